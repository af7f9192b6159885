/* corral-attach: run a command in a running container through liblxc's attach, from a small
 * freshly exec'd process instead of a clone of the daemon (LXD does the same with `lxd forkexec`).
 * liblxc's attach clones its caller: from the daemon that costs time growing with the daemon's
 * threads and heap, and holds the GIL; from this process it is cheap and constant.
 *
 *   corral-attach LXCPATH NAME CONFIG UID GID CWD MODE STDIN STDOUT STDERR NENV K=V... -- CMD ARG...
 *
 * MODE is "pty" (STDIN/STDOUT/STDERR are one pty slave: the command leads a new session with it as
 * controlling tty) or "pipe". The three fds are given by number (inherited from the daemon); they
 * become the command's 0, 1 and 2. The environment is cleared and set to the NENV K=V given.
 * On success the last line on our stdout is "pid N": N, the command's pid, is our child and is
 * orphaned to the daemon (a child subreaper) when we exit, right away; the daemon reaps it.
 * Anything else on stdout/stderr (liblxc's errors) is the reason it failed (exit status 1).
 * A command that cannot be executed exits 127 (not found) or 126, with "CMD: reason" on its stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <lxc/lxccontainer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

int main(int argc, char **argv)
{
	if (argc < 13) {
		printf("usage: corral-attach LXCPATH NAME CONFIG UID GID CWD MODE STDIN STDOUT STDERR NENV K=V... -- CMD...\n");
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
	if (12 + nenv >= argc || strcmp(argv[12 + nenv], "--") != 0 || 13 + nenv >= argc) {
		printf("bad arguments: the environment must be followed by -- and a command\n");
		return 2;
	}
	char **env = calloc(nenv + 1, sizeof(char *));
	if (!env)
		return 1;
	for (int i = 0; i < nenv; i++)
		env[i] = argv[12 + i];
	opts.env_policy = LXC_ATTACH_CLEAR_ENV;
	opts.extra_env_vars = env;
	p.argv = &argv[13 + nenv];
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
	pid_t pid = -1;
	if (c->attach(c, run_command, &p, &opts, &pid) < 0 || pid <= 0) {
		printf("attach to %s failed\n", name);
		return 1;
	}
	printf("pid %d\n", (int)pid);
	fflush(stdout);
	return 0;
}
