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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define PORT_NAME "org.corral.agent"
#define RETRY_MS 100

static const char *port_path;          /* NULL: the virtio port found in sysfs */
static const char *devlxd_path = "/dev/lxd/sock";
static const char *log_path = "/var/log/corral-agent.log";
static int port_fd = -1, port_is_socket, port_hup;
static int64_t next_port_try, next_hup_check;
static struct buf inb;
static int scanning = 1;               /* looking for a HELLO, ignoring everything else */
static uint8_t nonce[16];
static int logged_wait;

/* ---- the port ---- */

static int find_virtio_port(char *dev, size_t n)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	struct dirent *e;
	int found = -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512], name[256];
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		if (read_file_str(path, name, sizeof(name)) >= 0 && strcmp(name, PORT_NAME) == 0) {
			snprintf(dev, n, "/dev/%s", e->d_name);
			found = 0;
			break;
		}
	}
	closedir(d);
	return found;
}

static int open_port(void)
{
	char dev[300];
	const char *path = port_path;
	struct stat st;
	int fd;
	if (!path) {
		if (find_virtio_port(dev, sizeof(dev)) < 0) {
			if (!logged_wait++)
				logmsg("waiting for the virtio port %s", PORT_NAME);
			return -1;
		}
		path = dev;
	}
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(path) >= sizeof(sa.sun_path))
			return -1;
		strcpy(sa.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			return -1;
		}
		port_is_socket = 1;
	} else {
		fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			if (!logged_wait++)
				logmsg("cannot open %s: %s (retrying)", path, strerror(errno));
			return -1;
		}
		struct termios t;
		if (tcgetattr(fd, &t) == 0) {
			cfmakeraw(&t);
			tcsetattr(fd, TCSANOW, &t);
		}
		port_is_socket = 0;
	}
	set_nonblock(fd);
	logmsg("port %s open", path);
	logged_wait = 0;
	return fd;
}

/* The host went away (or the stream broke): forget the link state; sessions live until a HELLO. */
static void host_gone(const char *why)
{
	if (synced)
		logmsg("host disconnected (%s)", why);
	synced = 0;
	scanning = 1;
	outq.off = outq.len = 0;
	inb.off = inb.len = 0;
	if (port_is_socket && port_fd >= 0) {
		close(port_fd);
		port_fd = -1;
		next_port_try = now_ms() + RETRY_MS;
	} else {
		port_hup = 1;
		next_hup_check = now_ms() + RETRY_MS;
	}
}

static void proto_error(const char *why)
{
	logmsg("protocol error: %s; waiting for a HELLO", why);
	send_frame(F_PROTO_ERROR, 0, 0, why, strlen(why));
	synced = 0;
	scanning = 1;
}

/* ---- frames from the host ---- */

static void handle_hello(const uint8_t *p, size_t n)
{
	const uint8_t *nc;
	size_t nl;
	if (!tlv_get(p, n, T_NONCE, 0, &nc, &nl) || nl != sizeof(nonce)) {
		logmsg("HELLO without a nonce ignored");
		return;
	}
	if (!(synced && memcmp(nc, nonce, sizeof(nonce)) == 0)) {
		/* A new host connection: what belonged to the previous one goes. */
		int n_chans = 0;
		for (struct chan *c = chans; c; c = c->next)
			n_chans++;
		chan_free_all();
		outq.off = outq.len = 0;
		memcpy(nonce, nc, sizeof(nonce));
		synced = 1;
		logmsg("host connected (%d old sessions dropped)", n_chans);
		char *host = tlv_strdup(p, n, T_HOSTNAME, 0);
		if (host && *host) {
			char cur[256] = "";
			gethostname(cur, sizeof(cur) - 1);
			if (strcmp(cur, host) != 0 && sethostname(host, strlen(host)) < 0)
				logmsg("sethostname(%s): %s", host, strerror(errno));
		}
		free(host);
	}
	struct buf t = {0};
	tlv_put(&t, T_NONCE, nonce, sizeof(nonce));
	tlv_int(&t, T_VERSION, PROTO_VERSION);
	tlv_int(&t, T_PID, getpid());
	send_tlv(F_HELLO_ACK, 0, 0, &t);
}

static void close_in(struct chan *c)
{
	if (c->in_fd < 0)
		return;
	if (c->kind == C_STREAM)
		shutdown(c->in_fd, SHUT_WR);
	close(c->in_fd);
	c->in_fd = -1;
}

static void dispatch(int type, int flags, uint32_t id, const uint8_t *p, size_t n)
{
	if (type == F_HELLO) {
		handle_hello(p, n);
		return;
	}
	if (!synced)
		return;
	struct chan *c = chan_find(id);
	switch (type) {
	case F_EXEC:
	case F_FILE_GET:
	case F_FILE_PUT:
	case F_FILE_DELETE:
	case F_STATE:
		if (c || id == 0 || (id & AGENT_CHAN_BIT)) {
			send_error(id, EEXIST, "channel id in use");
			return;
		}
		if (!tlv_valid(p, n)) {
			send_error(id, EINVAL, "malformed request");
			return;
		}
		if (type == F_EXEC)
			exec_start(id, p, n);
		else if (type == F_FILE_GET)
			file_get(id, p, n);
		else if (type == F_FILE_PUT)
			file_put(id, p, n);
		else if (type == F_FILE_DELETE)
			file_delete(id, p, n);
		else
			state_reply(id);
		return;
	case F_PING:
		send_frame(F_PONG, 0, id, p, n);
		return;
	}
	if (!c)
		return;   /* a channel already gone: late frames are dropped */
	switch (type) {
	case F_DATA:
		if (c->kind == C_PUT) {
			file_put_data(c, p, n);
		} else if (c->in_fd >= 0 && !c->in_eof) {
			buf_put(&c->inb, p, n);
			if (buf_size(&c->inb) > 2 * WINDOW) {
				logmsg("channel %u: host overran its credit", c->id);
				send_frame(F_CLOSE, 0, c->id, NULL, 0);
				chan_free(c, 1);
			}
		} else {
			chan_credit_consumed(c, n, 1);   /* nobody reads it any more: dropped */
		}
		return;
	case F_CREDIT:
		if (n == 4 && flags >= 1 && flags <= 2) {
			c->credit[flags] += get_le32(p);
			if (c->kind == C_GET && c->out_fd[1] < 0)
				chan_pump_mem(c);
		}
		return;
	case F_EOF:
		if (flags != 0)
			return;
		c->in_eof = 1;
		if (c->kind == C_PUT)
			file_put_eof(c);
		else if (!buf_size(&c->inb))
			close_in(c);
		return;
	case F_SIGNAL:
		if (n == 4)
			exec_signal(c, (int)get_le32(p));
		return;
	case F_RESIZE:
		if (n == 8)
			exec_resize(c, (int)get_le32(p), (int)get_le32(p + 4));
		return;
	case F_CLOSE:
		chan_free(c, 1);
		return;
	case F_SHUT:
		if (flags >= 1 && flags <= 2 && c->out_fd[flags] >= 0) {
			close(c->out_fd[flags]);
			c->out_fd[flags] = -1;
			if (c->pty) {   /* the terminal's reader is gone: hang it up */
				close_in(c);
				c->in_eof = 1;
			}
		}
		if (flags >= 1 && flags <= 2)
			c->out_done[flags] = 1;
		if (c->kind == C_EXEC)
			exec_check_done(c, now_ms());
		else if (c->kind == C_GET || (c->kind == C_STREAM && c->in_fd < 0))
			chan_free(c, 1);
		return;
	}
}

static int header_ok(const uint8_t *h)
{
	return h[0] == MAGIC0 && h[1] == MAGIC1 && get_le32(h + 12) == crc32_12(h) &&
	       get_le32(h + 8) <= MAX_IN_PAYLOAD;
}

static void parse_input(void)
{
	for (;;) {
		uint8_t *p = buf_data(&inb);
		size_t n = buf_size(&inb);
		if (scanning) {
			size_t i = 0;
			while (i + HDR_LEN <= n) {
				uint8_t *m = memchr(p + i, MAGIC0, n - i - HDR_LEN + 1);
				if (!m)
					break;
				i = (size_t)(m - p);
				if (header_ok(m) && m[2] == F_HELLO)
					break;
				i++;
			}
			if (i + HDR_LEN > n) {   /* keep a possible partial header */
				size_t keep = n < HDR_LEN - 1 ? n : HDR_LEN - 1;
				buf_consume(&inb, n - keep);
				return;
			}
			buf_consume(&inb, i);
			scanning = 0;
			continue;
		}
		if (n < HDR_LEN)
			return;
		if (!header_ok(p)) {
			proto_error("bad frame header");
			continue;
		}
		uint32_t len = get_le32(p + 8);
		if (n < HDR_LEN + len)
			return;
		dispatch(p[2], p[3], get_le32(p + 4), p + HDR_LEN, len);
		buf_consume(&inb, HDR_LEN + len);
	}
}

static void port_read(void)
{
	for (int round = 0; round < 16; round++) {
		buf_reserve(&inb, 256 * 1024);
		ssize_t r = read(port_fd, inb.p + inb.len, inb.cap - inb.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			host_gone(r == 0 ? "end of stream" : strerror(errno));
			return;
		}
		inb.len += (size_t)r;
		parse_input();
		if (port_fd < 0 || port_hup)
			return;
	}
}

static void port_write(void)
{
	while (buf_size(&outq)) {
		ssize_t w = write(port_fd, buf_data(&outq), buf_size(&outq));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) {
			host_gone(strerror(errno));
			return;
		}
		buf_consume(&outq, (size_t)w);
	}
}

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
			close_in(c);
			break;
		}
		buf_consume(&c->inb, (size_t)w);
		chan_credit_consumed(c, (size_t)w, buf_size(&c->inb) == 0);
	}
	if (c->in_eof && !buf_size(&c->inb))
		close_in(c);
	if (c->kind == C_STREAM && c->in_fd < 0 && c->out_done[1])
		chan_free(c, 0);
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
	if (c->kind == C_EXEC)
		exec_check_done(c, now_ms());
	else if (c->kind == C_GET || (c->kind == C_STREAM && c->in_fd < 0))
		chan_free(c, 0);
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
	fprintf(stderr, "usage: corral-agent [--port PATH] [--devlxd PATH] [--log PATH] [--foreground]\n");
	exit(2);
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid > 0)
		_exit(0);
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
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--foreground"))
			foreground = 1;
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port_path = argv[++i];
		else if (!strcmp(argv[i], "--devlxd") && i + 1 < argc)
			devlxd_path = argv[++i];
		else if (!strcmp(argv[i], "--log") && i + 1 < argc)
			log_path = argv[++i];
		else
			usage();
	}
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
