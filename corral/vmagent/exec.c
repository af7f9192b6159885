/* corral-agent: exec sessions (three pipes, or a pty), signals, window size, exit codes. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Every `tag` string of the request; NULL (and *bad set) if one holds a NUL byte. */
static char **strv(const uint8_t *p, size_t len, int tag, int *bad)
{
	int n = tlv_count(p, len, tag);
	char **v = calloc((size_t)n + 1, sizeof(char *));
	if (!v)
		abort();
	for (int i = 0; i < n; i++) {
		v[i] = tlv_strdup(p, len, tag, i);
		if (!v[i]) {
			*bad = 1;
			free_strv(v);
			return NULL;
		}
	}
	return v;
}

/* Report why the child could not start (stage, errno) and give up. */
static void child_fail(int ep, int stage)
{
	int rep[2] = {stage, errno};
	(void)!write(ep, rep, sizeof(rep));
	_exit(126);
}

static int open_pty(int *master, int *slave, int64_t uid, int64_t gid, int w, int h)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	if (grantpt(m) < 0 || unlockpt(m) < 0)
		goto fail;
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		char *name = ptsname(m);
		if (!name || (s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
			goto fail;
	}
	if (fchown(s, (uid_t)uid, (gid_t)gid) < 0 && errno != EPERM) {
		/* best effort: the terminal stays root's */
	}
	fchmod(s, 0620);
	struct winsize ws = {.ws_row = (unsigned short)(h > 0 ? h : 24), .ws_col = (unsigned short)(w > 0 ? w : 80)};
	ioctl(m, TIOCSWINSZ, &ws);
	*master = m;
	*slave = s;
	return 0;
fail: {
	int e = errno;
	close(m);
	errno = e;
	return -1;
}
}

void exec_start(uint32_t id, const uint8_t *p, size_t len)
{
	int bad = 0;
	char **argv = strv(p, len, T_ARG, &bad);
	char **envp = bad ? NULL : strv(p, len, T_ENV, &bad);
	char *cwd = tlv_strdup(p, len, T_CWD, 0);
	int64_t uid = tlv_int_or(p, len, T_UID, 0, NULL), gid = tlv_int_or(p, len, T_GID, 0, NULL);
	int pty = (int)tlv_int_or(p, len, T_PTY, 0, NULL);
	int w = (int)tlv_int_or(p, len, T_WIDTH, 80, NULL), h = (int)tlv_int_or(p, len, T_HEIGHT, 24, NULL);
	int fds[6] = {-1, -1, -1, -1, -1, -1};   /* pipes: in r/w, out r/w, err r/w; pty: master, slave */
	int ep[2] = {-1, -1};
	const char *what = NULL;

	if (bad || !argv || !argv[0]) {
		send_error(id, EINVAL, bad ? "Invalid command or environment: NUL byte" : "Empty command");
		goto out;
	}
	if (uid < 0 || uid > 0xfffffffeLL || gid < 0 || gid > 0xfffffffeLL) {
		send_error(id, EINVAL, "Invalid uid or gid");
		goto out;
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		what = "pipe";
		goto sys_fail;
	}
	if (pty) {
		if (open_pty(&fds[0], &fds[1], uid, gid, w, h) < 0) {
			what = "Failed to allocate a pty";
			goto sys_fail;
		}
	} else {
		for (int i = 0; i < 3; i++)
			if (pipe2(fds + 2 * i, O_CLOEXEC) < 0) {
				what = "pipe";
				goto sys_fail;
			}
	}
	pid_t pid = fork();
	if (pid < 0) {
		what = "fork";
		goto sys_fail;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		/* Every disposition back to the default, then the mask cleared: an agent started with
		 * signals ignored (SIGINT and SIGQUIT in a non-interactive shell's background job; its own
		 * SIGPIPE) must not pass that on, and a signal sent before the exec (pending while the
		 * agent's mask still blocks it) then takes its default action. */
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (pty) {
			ioctl(fds[1], TIOCSCTTY, 0);
			for (int i = 0; i < 3; i++)
				dup2(fds[1], i);
		} else {
			dup2(fds[0], 0);
			dup2(fds[3], 1);
			dup2(fds[5], 2);
		}
		umask(022);
		if (getuid() == 0 && setgroups(0, NULL) < 0)
			child_fail(ep[1], 0);
		if (setgid((gid_t)gid) < 0)
			child_fail(ep[1], 1);
		if (setuid((uid_t)uid) < 0)
			child_fail(ep[1], 2);
		if (chdir(cwd && *cwd ? cwd : "/") < 0)
			child_fail(ep[1], 3);
		environ = envp;
		execvp(argv[0], argv);
		int e = errno;
		dprintf(2, "%s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	close(ep[1]);
	ep[1] = -1;
	struct chan *c = chan_new(id, C_EXEC);
	c->pid = pid;
	c->pty = pty;
	c->errpipe = ep[0];
	ep[0] = -1;
	set_nonblock(c->errpipe);
	if (pty) {
		close(fds[1]);
		c->in_fd = fds[0];
		c->out_fd[1] = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
		c->out_done[2] = 1;
		fds[0] = fds[1] = -1;
	} else {
		close(fds[0]);
		close(fds[3]);
		close(fds[5]);
		c->in_fd = fds[1];
		c->out_fd[1] = fds[2];
		c->out_fd[2] = fds[4];
		for (int i = 0; i < 6; i++)
			fds[i] = -1;
	}
	set_nonblock(c->in_fd);
	set_nonblock(c->out_fd[1]);
	if (c->out_fd[2] >= 0)
		set_nonblock(c->out_fd[2]);
	goto out;

sys_fail: {
	int e = errno;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
	send_error(id, e, msg);
}
out:
	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < 2; i++)
		if (ep[i] >= 0)
			close(ep[i]);
	free_strv(argv);
	free_strv(envp);
	free(cwd);
}

/* SIGKILL every process of the session `sid` (the exec'd command leads its own session). */
static void kill_session(pid_t sid)
{
	kill(-sid, SIGKILL);
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1)
			continue;
		char path[64], st[512];
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (read_file_str(path, st, sizeof(st)) < 0)
			continue;
		char *rp = strrchr(st, ')');
		int ppid, pgrp, session;
		char state;
		if (rp && sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 && session == sid)
			kill((pid_t)pid, SIGKILL);
	}
	closedir(d);
}

void exec_kill_session(struct chan *c)
{
	if (c->pid > 0 && !c->exited)
		kill(c->pid, SIGKILL);
	if (c->pid > 0)
		kill_session(c->pid);
}

void exec_signal(struct chan *c, int sig)
{
	if (c->kind == C_EXEC && c->pid > 0 && !c->exited && sig > 0 && sig < 65)
		kill(c->pid, sig);
}

void exec_resize(struct chan *c, int w, int h)
{
	int fd = c->out_fd[1] >= 0 ? c->out_fd[1] : c->in_fd;
	if (c->kind != C_EXEC || !c->pty || fd < 0 || w <= 0 || h <= 0 || w > 65535 || h > 65535)
		return;
	struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
	ioctl(fd, TIOCSWINSZ, &ws);
}

void exec_reaped(pid_t pid, int status)
{
	for (struct chan *c = chans; c; c = c->next) {
		if (c->kind == C_EXEC && c->pid == pid && !c->exited) {
			c->exited = 1;
			c->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			c->exit_at = now_ms();
			exec_check_done(c, c->exit_at);
			return;
		}
	}
}

/* EXIT once the command is reaped and its output ended (or the grace period passed: a
 * background child may hold the output open); the channel goes once both are done. */
void exec_check_done(struct chan *c, int64_t now)
{
	if (c->replied < 0) {
		if (c->exited)
			chan_free(c, 0);
		return;
	}
	if (!c->exited || !c->replied)
		return;
	int outputs_done = c->out_done[1] && c->out_done[2];
	if (!c->exit_sent && (outputs_done || now >= c->exit_at + EXIT_GRACE_MS)) {
		struct buf t = {0};
		tlv_int(&t, T_CODE, c->code);
		send_tlv(F_EXIT, 0, c->id, &t);
		c->exit_sent = 1;
	}
	if (c->exit_sent && outputs_done)
		chan_free(c, 0);
}
