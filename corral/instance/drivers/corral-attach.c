/* corral-attach: run a command in a running container through liblxc's attach, from a small
 * freshly exec'd process instead of a clone of the daemon (LXD does the same with `lxd forkexec`).
 * liblxc's attach clones its caller: from the daemon that costs time growing with the daemon's
 * threads and heap, and holds the GIL; from this process it is cheap and constant.
 *
 *   corral-attach LXCPATH NAME CONFIG UID GID CWD MODE STDIN STDOUT STDERR NENV K=V... NCG DIR... -- CMD ARG...
 *
 * MODE is "pty" (STDIN/STDOUT/STDERR are one pty slave: the command leads a new session with it as
 * controlling tty) or "pipe". The three fds are given by number (inherited from the daemon); they
 * become the command's 0, 1 and 2. The environment is cleared and set to the NENV K=V given.
 * On success the last line on our stdout is "pid N": N, the command's pid, is our child and is
 * orphaned to the daemon (a child subreaper) when we exit, right away; the daemon reaps it.
 * Anything else on stdout/stderr (liblxc's errors) is the reason it failed (exit status 1).
 * A command that cannot be executed exits 127 (not found) or 126, with "CMD: reason" on its stderr.
 *
 * The NCG DIRs are the container's cgroups, where liblxc's attach would move the command: "1:DIR"
 * a v1 directory, "2:DIR" the v2 one. liblxc moves the command by writing its pid to cgroup.procs,
 * which takes the kernel's global cgroup_threadgroup_rwsem for writing: an RCU grace period, 1 to
 * 20 ms on a busy host, on every exec. Instead we move ourselves first (one thread writing "0" to a
 * v1 `tasks` file does not take that lock) and clone3(CLONE_INTO_CGROUP) a child into the v2
 * directory (which takes it only for reading); the command, forked from there, starts in them. If
 * any of that fails, liblxc's own move is used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <lxc/lxccontainer.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct payload {
	char **argv;
	int pty;
};

static int run_command(void *data)
{
	struct payload *p = data;
	if (p->pty) {
		setsid(); /* fails only for a session leader, which we are not */
		if (ioctl(0, TIOCSCTTY, 0) < 0) {
			dprintf(2, "%s: cannot set the controlling terminal: %s\n", p->argv[0], strerror(errno));
			_exit(126);
		}
	}
	execvp(p->argv[0], p->argv);
	int err = errno;
	dprintf(2, "%s: %s\n", p->argv[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

static int number(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 0x7fffffff) {
		printf("bad %s: %s\n", what, s);
		exit(2);
	}
	return (int)v;
}

/* Move this (single-threaded) process into the v1 directories; 0 when done. */
static int enter_v1(char **dirs, int n)
{
	for (int i = 0; i < n; i++) {
		if (strncmp(dirs[i], "1:", 2) != 0)
			continue;
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/tasks", dirs[i] + 2) >= (int)sizeof(path))
			return -1;
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		int ok = write(fd, "0", 1) == 1;
		close(fd);
		if (!ok)
			return -1;
	}
	return 0;
}

/* The v2 directory among the cgroups, or NULL. */
static const char *v2_dir(char **dirs, int n)
{
	const char *dir = NULL;
	for (int i = 0; i < n; i++)
		if (strncmp(dirs[i], "2:", 2) == 0)
			dir = dirs[i] + 2;
	return dir;
}

/* Fork into the v2 directory `dir`: like fork(), or -1 (errno set) when it cannot be done. */
static pid_t fork_into(const char *dir)
{
	mkdir(dir, 0755); /* liblxc makes this leaf the same way; EEXIST is the usual case */
	int fd = open(dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (unsigned)fd};
	pid_t pid = syscall(SYS_clone3, &args, sizeof(args));
	int err = errno;
	close(fd);
	errno = err;
	return pid;
}

static int do_attach(struct lxc_container *c, const char *name, struct payload *p, lxc_attach_options_t *opts)
{
	pid_t pid = -1;
	if (c->attach(c, run_command, p, opts, &pid) < 0 || pid <= 0) {
		printf("attach to %s failed\n", name);
		return 1;
	}
	printf("pid %d\n", (int)pid);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 14) {
		printf("usage: corral-attach LXCPATH NAME CONFIG UID GID CWD MODE STDIN STDOUT STDERR NENV K=V... NCG DIR... -- CMD...\n");
		return 2;
	}
	const char *lxcpath = argv[1], *name = argv[2], *config = argv[3];
	lxc_attach_options_t opts = LXC_ATTACH_OPTIONS_DEFAULT;
	opts.uid = number(argv[4], "uid");
	opts.gid = number(argv[5], "gid");
	opts.initial_cwd = argv[6];
	struct payload p = {.pty = strcmp(argv[7], "pty") == 0};
	opts.stdin_fd = number(argv[8], "fd");
	opts.stdout_fd = number(argv[9], "fd");
	opts.stderr_fd = number(argv[10], "fd");
	int nenv = number(argv[11], "env count");
	if (12 + nenv >= argc) {
		printf("bad arguments: too few\n");
		return 2;
	}
	int ncg = number(argv[12 + nenv], "cgroup count");
	int dash = 13 + nenv + ncg;
	if (dash >= argc || strcmp(argv[dash], "--") != 0 || dash + 1 >= argc) {
		printf("bad arguments: the cgroups must be followed by -- and a command\n");
		return 2;
	}
	char **cgdirs = &argv[13 + nenv];
	char **env = calloc(nenv + 1, sizeof(char *));
	if (!env)
		return 1;
	for (int i = 0; i < nenv; i++)
		env[i] = argv[12 + i];
	opts.env_policy = LXC_ATTACH_CLEAR_ENV;
	opts.extra_env_vars = env;
	p.argv = &argv[dash + 1];
	/* the command gets only its three fds (liblxc dup2s them onto 0-2) */
	int fds[] = {opts.stdin_fd, opts.stdout_fd, opts.stderr_fd};
	for (int i = 0; i < 3; i++)
		if (fds[i] > 2 && fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
			printf("bad fd %d: %s\n", fds[i], strerror(errno));
			return 2;
		}
	fflush(stdout);

	struct lxc_container *c = lxc_container_new(name, lxcpath);
	if (!c) {
		printf("cannot open container %s in %s\n", name, lxcpath);
		return 1;
	}
	if (!c->is_defined(c) && access(config, R_OK) == 0 && !c->load_config(c, config)) {
		printf("cannot load %s\n", config);
		return 1;
	}
	if (ncg == 0 || enter_v1(cgdirs, ncg) < 0)
		return do_attach(c, name, &p, &opts); /* liblxc moves the command */
	const char *v2 = v2_dir(cgdirs, ncg);
	opts.attach_flags &= ~LXC_ATTACH_MOVE_TO_CGROUP;
	if (!v2)
		return do_attach(c, name, &p, &opts);
	pid_t child = fork_into(v2);
	if (child < 0) {
		opts.attach_flags |= LXC_ATTACH_MOVE_TO_CGROUP;
		return do_attach(c, name, &p, &opts);
	}
	if (child == 0)
		_exit(do_attach(c, name, &p, &opts));
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) {
			printf("waitpid: %s\n", strerror(errno));
			return 1;
		}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
