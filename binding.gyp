{
  "targets": [
    {
      "target_name": "blessd_native",
      "sources": [
        "native/addon.cc",
        "native/fanotify/gate.cc",
        "native/fanotify/reader.cc",
        "native/fanotify/marks.cc",
        "native/fanotify/trees.cc",
        "native/proc/fdinfo.cc",
        "native/xattr/xattr.cc",
        "native/file/identity.cc",
        "native/socket/scm_rights.cc",
        "native/socket/peercred.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
