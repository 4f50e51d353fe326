/* exp11_shared_mmap.c - stores through a MAP_SHARED writable mapping that outlives close(): what the kernel tells
 * a fanotify listener, what it does to ignore marks and to the file's times, and what /proc shows.
 * Self-contained: mounts its own 32 MiB ext4 image and a tmpfs under a fresh /tmp/exp11-XXXXXX (nothing else is
 * marked), unmounts and removes them at the end. Every permission event is answered FAN_ALLOW; alarm() bounds it.
 * Build: gcc -O2 -Wall -pthread -o exp11_shared_mmap exp11_shared_mmap.c ; run as root.
 */
#include "fan_compat.h"
#include <pthread.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

static int gate, notif;        /* PRE_CONTENT group (open perm + pre-access), NOTIF group (FID: modify/close/attrib) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[4096];        /* events since the last step() */

static void note(const char *s)
{
	pthread_mutex_lock(&mu);
	if (strlen(seen) + strlen(s) + 2 < sizeof seen) {
		strcat(seen, s);
		strcat(seen, " ");
	}
	pthread_mutex_unlock(&mu);
}

/* The syscall a task is blocked in, as /proc/<tid>/syscall shows it: "nr a0 a1 a2 a3 a4 a5 sp pc". */
static void blocked_syscall(int pid, char *out, size_t n)
{
	char p[64], buf[256] = "";
	snprintf(p, sizeof p, "/proc/%d/syscall", pid);
	int fd = open(p, O_RDONLY);
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0) close(fd);
	buf[len > 0 ? len : 0] = 0;
	char *sp = buf;
	/* keep nr and the first 4 args: mmap(addr, len, prot, flags, fd, off) */
	int fields = 0;
	for (char *c = buf; *c; c++)
		if (*c == ' ' && ++fields == 5) { *c = 0; break; }
	snprintf(out, n, "[syscall %s]", sp);
}

static void *listen_gate(void *arg)
{
	(void)arg;
	char buf[8192];
	for (;;) {
		ssize_t len = read(gate, buf, sizeof buf);
		if (len <= 0) { if (errno == EINTR) continue; return NULL; }
		struct fanotify_event_metadata *md = (void *)buf;
		for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
			char ms[128], line[320], sc[200] = "";
			if (md->mask & FAN_PRE_ACCESS) blocked_syscall(md->pid, sc, sizeof sc);
			snprintf(line, sizeof line, "gate:%s%s", mask_str(md->mask, ms, sizeof ms), sc);
			note(line);
			if (md->fd >= 0) {
				struct fanotify_response r = { md->fd, FAN_ALLOW };
				if (md->mask & (FAN_OPEN_PERM | FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM))
					if (write(gate, &r, sizeof r) != sizeof r) perror("answer");
				close(md->fd);
			}
		}
	}
}

static void *listen_notif(void *arg)
{
	(void)arg;
	char buf[8192];
	for (;;) {
		ssize_t len = read(notif, buf, sizeof buf);
		if (len <= 0) { if (errno == EINTR) continue; return NULL; }
		struct fanotify_event_metadata *md = (void *)buf;
		for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
			char ms[128], line[160];
			snprintf(line, sizeof line, "change:%s", mask_str(md->mask, ms, sizeof ms));
			note(line);
		}
	}
}

/* Let the listeners catch up, then print what they saw since the last step. */
static void step(const char *label)
{
	usleep(100000);
	pthread_mutex_lock(&mu);
	printf("  %-62s %s\n", label, seen[0] ? seen : "(no events)");
	seen[0] = 0;
	pthread_mutex_unlock(&mu);
}

static struct timespec ctime_of(const char *path)
{
	struct stat st;
	stat(path, &st);   /* stat: no open, no event */
	return st.st_ctim;
}

static void times(const char *label, const char *path, struct timespec *last)
{
	struct stat st;
	stat(path, &st);
	int changed = st.st_ctim.tv_sec != last->tv_sec || st.st_ctim.tv_nsec != last->tv_nsec;
	printf("  %-62s ctime %s, mtime %s\n", label, changed ? "CHANGED" : "same",
	       st.st_mtim.tv_sec == st.st_ctim.tv_sec && st.st_mtim.tv_nsec == st.st_ctim.tv_nsec ? "= ctime" : "differs");
	*last = st.st_ctim;
}

/* Another process reads the file (fresh open + read); prints what it got. */
static void reader(const char *label, const char *path)
{
	pid_t c = fork();
	if (c == 0) {
		char b[16] = "";
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, b, 8) : -1;
		_exit(n > 0 ? b[0] : 0);
	}
	int st;
	waitpid(c, &st, 0);
	char first = WIFEXITED(st) ? (char)WEXITSTATUS(st) : '?';
	char l[128];
	snprintf(l, sizeof l, "%s (read back '%c')", label, first);
	step(l);
}

static int ignore_mark(const char *path, int ext4)
{
	int fd = open(path, O_RDONLY);   /* our own open: the listener answers it */
	uint64_t m = FAN_OPEN_PERM | (ext4 ? FAN_PRE_ACCESS : 0);
	int r = fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, m, fd, NULL);
	close(fd);
	return r;
}

static void maps_line(const char *path)
{
	struct stat st;
	stat(path, &st);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off, ino;
		char perms[8];
		unsigned maj, min;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min, &ino) == 7 && ino == st.st_ino &&
		    makedev(maj, min) == st.st_dev)
			printf("  %-62s %s", "/proc/self/maps after close():", line);
	}
	if (f) fclose(f);
	char link[64];
	snprintf(link, sizeof link, "/proc/self/map_files");
	printf("  %-62s %s\n", "map_files/ lists it too:", access(link, R_OK) == 0 ? "yes (directory readable)" : strerror(errno));
}

static void scenario(const char *mnt, int ext4)
{
	char f[256], g[256];
	struct timespec last;
	printf("\n== %s (%s) ==\n", ext4 ? "ext4" : "tmpfs", ext4 ? "open perm + pre-access" : "open perm only: tmpfs has no pre-content events");
	uint64_t gm = FAN_OPEN_PERM | (ext4 ? FAN_PRE_ACCESS : 0);
	if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, gm, AT_FDCWD, mnt)) { perror("gate mark"); exit(1); }
	if (fanotify_mark(notif, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB, AT_FDCWD, mnt)) { perror("notif mark"); exit(1); }

	/* A: the file is blessed (ignore mark) before the attacker opens it for write and maps it. */
	snprintf(f, sizeof f, "%s/blessed", mnt);
	int w = open(f, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (write(w, "cleancleancleanclean", 20) != 20) perror("write");
	fsync(w);
	close(w);
	step("A. setup: root writes 20 bytes, closes");
	printf("  %-62s %s\n", "A. ignore mark added (nothing open for write)", ignore_mark(f, ext4) == 0 ? "ok" : strerror(errno));
	step("   (our own open for the mark)");
	reader("A1. another process reads: silent?", f);
	int fd = open(f, O_RDWR);
	step("A2. attacker open(O_RDWR)");
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	step("A3. mmap(PROT_READ|PROT_WRITE, MAP_SHARED)");
	close(fd);
	step("A4. close(fd), mapping kept");
	maps_line(f);
	last = ctime_of(f);
	m[0] = 'X';
	step("A5. store 'X' through the mapping");
	times("A5. after the first store (first write fault of the mapping):", f, &last);
	reader("A6. another process reads", f);
	m[0] = 'Y';
	times("A7. second store 'Y' to the same, still writable page:", f, &last);
	step("A7. events");
	reader("A8. another process reads", f);
	int ro = open(f, O_RDONLY);
	printf("  %-62s %s\n", "A9. fdatasync() through a read-only fd:", fdatasync(ro) == 0 ? "ok" : strerror(errno));
	close(ro);
	step("A9. events");
	last = ctime_of(f);
	m[0] = 'Z';
	times("A10. store 'Z' after that writeback:", f, &last);
	step("A10. events");
	munmap(m, 4096);
	step("A11. munmap (the last reference to the write-open file)");
	reader("A12. another process reads after munmap", f);

	/* B: the file is not silent (no ignore mark yet) when it is mapped. */
	snprintf(g, sizeof g, "%s/fresh", mnt);
	w = open(g, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (write(w, "cleancleancleanclean", 20) != 20) perror("write");
	close(w);
	step("B. setup: a fresh file, no ignore mark");
	fd = open(g, O_RDWR);
	step("B1. attacker open(O_RDWR)");
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	step("B2. mmap(PROT_READ|PROT_WRITE, MAP_SHARED) [nr 9: addr len prot flags]");
	close(fd);
	step("B3. close(fd), mapping kept");
	printf("  %-62s %s\n", "B4. ignore mark added now (returns)", ignore_mark(g, ext4) == 0 ? "0" : strerror(errno));
	step("   (our own open for the mark)");
	reader("B5. another process reads: did the mark take?", g);
	m[0] = 'X';
	reader("B6. store 'X', another process reads", g);
	munmap(m, 4096);
	step("B7. munmap");
	printf("  %-62s %s\n", "B8. ignore mark added after munmap", ignore_mark(g, ext4) == 0 ? "0" : strerror(errno));
	step("   (our own open for the mark)");
	reader("B9. another process reads: silent now?", g);

	fanotify_mark(gate, FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, gm, AT_FDCWD, mnt);
	fanotify_mark(notif, FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB, AT_FDCWD, mnt);
	step("(marks removed)");
}

int main(void)
{
	alarm(60);
	setvbuf(stdout, NULL, _IOLBF, 0);
	char base[] = "/tmp/exp11-XXXXXX", cmd[1024], ext4[300], tmp[300];
	if (!mkdtemp(base)) { perror("mkdtemp"); return 1; }
	snprintf(ext4, sizeof ext4, "%s/ext4", base);
	snprintf(tmp, sizeof tmp, "%s/tmpfs", base);
	mkdir(ext4, 0755);
	mkdir(tmp, 0755);
	snprintf(cmd, sizeof cmd, "truncate -s 32M %s/img && mkfs.ext4 -q -F %s/img && mount -o loop %s/img %s", base, base, base, ext4);
	if (system(cmd) != 0) { fprintf(stderr, "mount ext4 failed\n"); return 1; }
	if (mount("tmpfs", tmp, "tmpfs", 0, "size=8m")) { perror("mount tmpfs"); return 1; }
	FILE *v = fopen("/proc/sys/kernel/osrelease", "r");
	char rel[65] = "";
	if (v && fgets(rel, sizeof rel, v)) rel[strcspn(rel, "\n")] = 0;
	if (v) fclose(v);
	printf("exp11: shared writable mappings after close (Linux %s)\n", rel);

	gate = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	notif = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID, O_RDONLY);
	if (gate < 0 || notif < 0) { perror("fanotify_init"); return 1; }
	pthread_t a, b;
	pthread_create(&a, NULL, listen_gate, NULL);
	pthread_create(&b, NULL, listen_notif, NULL);
	scenario(ext4, 1);
	scenario(tmp, 0);

	close(gate);
	close(notif);
	snprintf(cmd, sizeof cmd, "umount %s; umount %s; rm -rf %s", ext4, tmp, base);
	return system(cmd) == 0 ? 0 : 1;
}
