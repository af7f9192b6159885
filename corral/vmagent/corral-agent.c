/* corral-agent: the agent inside Corral's virtual machines (a single static binary).
 *
 *   corral-agent [--port PATH] [--devlxd PATH] [--log PATH] [--foreground]
 *
 * It talks to corrald over one byte stream, the virtio-serial port named org.corral.agent (found
 * in /sys/class/virtio-ports, waited for), or --port: a unix socket to connect to, or any character
 * device (a tty is made raw). Over it runs the framed, multiplexed protocol of docs/vm-agent.md:
 * exec sessions, file transfers, state, and /dev/lxd connections tunnelled to the host.
 *
 * One thread, one poll() loop, every fd non-blocking and close-on-exec. The host side may go away at
 * any time (corrald killed -9): a virtio port then polls POLLHUP, a socket reads EOF (it is
 * reconnected). The agent keeps running and waits for a new HELLO, which drops every session of the
 * previous connection (their processes are killed).
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *devlxd_path = "/dev/lxd/sock";
static const char *log_path = "/var/log/corral-agent.log";
static const char *lock_path;           /* default: DEFAULT_LOCK unless --port is given */
#define DEFAULT_LOCK "/run/corral-agent.lock"

/* ---- local fds ---- */

enum role { R_SIG, R_LISTEN, R_PORT, R_ERRPIPE, R_IN, R_OUT1, R_OUT2 };
struct slot {
	int role;
	uint32_t id;
};

static void on_errpipe(struct chan *c)
{
	int rep[2];
	ssize_t r;
	do
		r = read(c->errpipe, rep, sizeof(rep));
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return;
	close(c->errpipe);
	c->errpipe = -1;
	if (r == (ssize_t)sizeof(rep)) {
		static const char *const stage[] = {"set the groups", "set the group id", "set the user id",
						    "change to the working directory"};
		char msg[256];
		snprintf(msg, sizeof(msg), "Failed to %s: %s", stage[rep[0] & 3], strerror(rep[1]));
		send_error(c->id, rep[1], msg);
		c->replied = -1;
	} else {
		struct buf t = {0};
		tlv_int(&t, T_ERRNO, 0);
		tlv_int(&t, T_PID, c->pid);
		send_tlv(F_REPLY, 0, c->id, &t);
		c->replied = 1;
	}
	exec_check_done(c, now_ms());
}

static void on_in(struct chan *c)
{
	while (buf_size(&c->inb)) {
		ssize_t w = write(c->in_fd, buf_data(&c->inb), buf_size(&c->inb));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) {   /* EPIPE: the reader is gone, what is left is dropped */
			size_t left = buf_size(&c->inb);
			c->inb.off = c->inb.len = 0;
			chan_credit_consumed(c, left, 1);
			chan_close_in(c);
			break;
		}
		buf_consume(&c->inb, (size_t)w);
		chan_credit_consumed(c, (size_t)w, buf_size(&c->inb) == 0);
	}
	if (c->in_eof && !buf_size(&c->inb))
		chan_close_in(c);
	chan_check_done(c);
}

static void on_out(struct chan *c, int s)
{
	size_t max = c->credit[s] > (int64_t)DATA_CHUNK ? DATA_CHUNK : (size_t)c->credit[s];
	if (c->kind == C_GET && (int64_t)max > c->remaining)
		max = (size_t)c->remaining;
	ssize_t r = max ? send_data_from_fd(c->id, s, c->out_fd[s], max) : 0;
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r > 0) {
		c->credit[s] -= r;
		if (c->kind != C_GET || (c->remaining -= r) > 0)
			return;
	}
	/* EOF (EIO from a pty whose slave is closed counts as one) or an error */
	if (r < 0 && errno != EIO) {
		struct buf t = {0};
		tlv_int(&t, T_ERRNO, errno);
		send_tlv(F_EOF, s, c->id, &t);
	} else {
		send_frame(F_EOF, s, c->id, NULL, 0);
	}
	close(c->out_fd[s]);
	c->out_fd[s] = -1;
	c->out_done[s] = 1;
	chan_check_done(c);
}

static void reap(int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) > 0) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			logmsg("signal %d: killing %s sessions, exiting", (int)si.ssi_signo, chans ? "the" : "no");
			chan_free_all();
			if (*devlxd_path)
				unlink(devlxd_path);
			exit(0);
		}
	}
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		exec_reaped(pid, status);
}

static void usage(void)
{
	fprintf(stderr, "usage: corral-agent [--port PATH] [--devlxd PATH] [--log PATH] [--lock PATH] [--foreground]\n"
			"       corral-agent [--devlxd PATH] --query /1.0/...   (a GET of /dev/lxd, its body on stdout)\n");
	exit(2);
}

/* One agent per port: a second one (an init's respawn loop around a daemonized agent) exits at once.
 * The lock is held by the open file, which the daemonized child inherits. */
static void take_lock(const char *path)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		logmsg("cannot open the lock %s: %s (going on without it)", path, strerror(errno));
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		logmsg("another agent holds %s: exiting", path);
		exit(1);
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == 0)
		(void)!write(fd, pid, (size_t)n);
	/* fd stays open for the agent's life */
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid > 0) {
		/* the lock names the child before the parent returns: whoever reads it after we exit
		 * never sees the parent's (gone) pid */
		if (lock_path && *lock_path) {
			int fd = open(lock_path, O_WRONLY | O_CLOEXEC);
			if (fd >= 0) {
				char buf[32];
				int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
				if (ftruncate(fd, 0) == 0)
					(void)!write(fd, buf, (size_t)n);
				close(fd);
			}
		}
		_exit(0);
	}
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(log >= 0 ? log : null, 2);
	}
	if (null > 2)
		close(null);
	if (log > 2)
		close(log);
}

int main(int argc, char **argv)
{
	int foreground = 0;
	const char *query = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--query") && i + 1 < argc)
			query = argv[++i];
		else if (!strcmp(argv[i], "--foreground"))
			foreground = 1;
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port_path = argv[++i];
		else if (!strcmp(argv[i], "--devlxd") && i + 1 < argc)
			devlxd_path = argv[++i];
		else if (!strcmp(argv[i], "--log") && i + 1 < argc)
			log_path = argv[++i];
		else if (!strcmp(argv[i], "--lock") && i + 1 < argc)
			lock_path = argv[++i];
		else
			usage();
	}
	if (query)
		return devlxd_query(*devlxd_path ? devlxd_path : "/dev/lxd/sock", query);
	if (!lock_path && !port_path)
		lock_path = DEFAULT_LOCK;
	if (lock_path && *lock_path)
		take_lock(lock_path);
	if (!foreground)
		daemonize();
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		logmsg("signalfd: %s", strerror(errno));
		return 1;
	}
	int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (adj >= 0) {
		(void)!write(adj, "-900", 4);
		close(adj);
	}
	int lfd = *devlxd_path ? devlxd_listen(devlxd_path) : -1;
	logmsg("started (protocol %d)", PROTO_VERSION);

	struct pollfd *pfd = NULL;
	struct slot *slot = NULL;
	size_t cap = 0;
	for (;;) {
		int64_t now = now_ms();
		if (port_fd < 0 && now >= next_port_try) {
			port_fd = open_port();
			if (port_fd < 0)
				next_port_try = now + RETRY_MS;
			port_hup = 0;
		}
		if (port_fd >= 0 && port_hup && now >= next_hup_check) {
			struct pollfd q = {.fd = port_fd, .events = POLLIN};
			if (poll(&q, 1, 0) >= 0 && !(q.revents & POLLHUP)) {
				port_hup = 0;
				inb.off = inb.len = 0;
			} else {
				next_hup_check = now + RETRY_MS;
			}
		}
		size_t nch = 0;
		for (struct chan *c = chans; c; c = c->next)
			nch++;
		if (cap < 3 + 4 * nch) {
			cap = 2 * (3 + 4 * nch);
			pfd = realloc(pfd, cap * sizeof(*pfd));
			slot = realloc(slot, cap * sizeof(*slot));
			if (!pfd || !slot)
				abort();
		}
		size_t np = 0;
		int timeout = -1;
#define ADD(fd_, ev_, role_, id_) \
	do { pfd[np] = (struct pollfd){.fd = (fd_), .events = (ev_)}; slot[np++] = (struct slot){(role_), (id_)}; } while (0)
		ADD(sfd, POLLIN, R_SIG, 0);
		if (lfd >= 0)
			ADD(lfd, POLLIN, R_LISTEN, 0);
		if (port_fd >= 0 && !port_hup)
			ADD(port_fd, POLLIN | (buf_size(&outq) ? POLLOUT : 0), R_PORT, 0);
		if (port_fd < 0 || port_hup)
			timeout = RETRY_MS;
		int room = synced && buf_size(&outq) < OUTQ_HIGH;
		for (struct chan *c = chans; c; c = c->next) {
			if (c->errpipe >= 0)
				ADD(c->errpipe, POLLIN, R_ERRPIPE, c->id);
			if (c->in_fd >= 0 && buf_size(&c->inb))
				ADD(c->in_fd, POLLOUT, R_IN, c->id);
			for (int s = 1; s <= 2; s++)
				if (c->out_fd[s] >= 0 && c->replied > 0 && c->credit[s] > 0 && room)
					ADD(c->out_fd[s], POLLIN, s == 1 ? R_OUT1 : R_OUT2, c->id);
			if (c->kind == C_EXEC && c->exited && !c->exit_sent && c->replied > 0) {
				int64_t left = c->exit_at + EXIT_GRACE_MS - now;
				int t = left < 0 ? 0 : (int)left + 1;
				if (timeout < 0 || t < timeout)
					timeout = t;
			}
		}
		int r = poll(pfd, np, timeout);
		if (r < 0 && errno != EINTR) {
			logmsg("poll: %s", strerror(errno));
			return 1;
		}
		now = now_ms();
		for (size_t i = 0; r > 0 && i < np; i++) {
			short ev = pfd[i].revents;
			if (!ev)
				continue;
			if (slot[i].role == R_SIG) {
				reap(sfd);
				continue;
			}
			if (slot[i].role == R_LISTEN) {
				devlxd_accept(lfd);
				continue;
			}
			if (slot[i].role == R_PORT) {
				if (port_fd < 0 || port_hup)
					continue;
				if (ev & POLLIN)
					port_read();
				if (port_fd >= 0 && !port_hup && (ev & (POLLHUP | POLLERR)) && !(ev & POLLIN))
					host_gone("hang-up");
				if (port_fd >= 0 && !port_hup && (ev & POLLOUT))
					port_write();
				continue;
			}
			struct chan *c = chan_find(slot[i].id);
			if (!c)
				continue;
			if (slot[i].role == R_ERRPIPE && c->errpipe == pfd[i].fd)
				on_errpipe(c);
			else if (slot[i].role == R_IN && c->in_fd == pfd[i].fd)
				on_in(c);
			else if (slot[i].role == R_OUT1 && c->out_fd[1] == pfd[i].fd)
				on_out(c, 1);
			else if (slot[i].role == R_OUT2 && c->out_fd[2] == pfd[i].fd)
				on_out(c, 2);
		}
		/* exits whose output never ended: send them after the grace period */
		for (struct chan *c = chans, *next; c; c = next) {
			next = c->next;
			if (c->kind == C_EXEC)
				exec_check_done(c, now);
		}
		if (port_fd >= 0 && !port_hup && buf_size(&outq))
			port_write();
	}
}
