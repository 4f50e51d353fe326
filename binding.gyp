{
  "targets": [
    {
      "target_name": "blessd_native",
      "sources": [
        "native/addon.cc",
        "native/fanotify/gate.cc",
        "native/fanotify/answers.cc",
        "native/fanotify/lane.cc",
        "native/fanotify/lane_queue.cc",
        "native/fanotify/reader.cc",
        "native/fanotify/marks.cc",
        "native/fanotify/trees.cc",
        "native/proc/task.cc",
        "native/proc/pidfd.cc",
        "native/xattr/xattr.cc",
        "native/file/identity.cc",
        "native/socket/scm_rights.cc",
        "native/socket/peercred.cc",
        "native/socket/datagram.cc",
        "native/fanotify/tag_settle.cc",
        "native/fanotify/settle_walk.cc",
        "native/fanotify/map_sweep.cc",
        "native/tags/verify.cc",
        "native/tags/read.cc",
        "native/tags/settle.cc",
        "native/tags/js.cc",
        "native/tags/stamp.cc",
        "native/tags/write.cc",
        "native/proc/fd_path.cc",
        "native/proc/thread_name.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "blessd-preload",
      "type": "shared_library",
      "product_name": "blessd-preload",
      "product_prefix": "lib",
      "sources": [
        "native/preload/wrappers.c",
        "native/preload/gate.c",
        "native/preload/guards.c",
        "native/preload/scan.c",
        "native/preload/config.c",
        "native/preload/stack.c",
        "native/preload/tags.c",
        "native/preload/sha256.c"
      ],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-format-truncation", "-Wno-unused-parameter"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "blessd_match",
      "sources": ["native/match/module.cc", "native/match/vectorscan.cc", "native/match/pass.cc", "native/digest/digests.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "libraries": ["-lhs"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
