/* corral-agent: the link to the host (the virtio port, or a socket or tty given with --port):
 * opening it, noticing the host go and come back, and the frames read from it. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define PORT_NAME "org.corral.agent"

const char *port_path;          /* NULL: the virtio port found in sysfs */
int port_fd = -1, port_is_socket, port_hup;
int64_t next_port_try, next_hup_check;
struct buf inb;
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

int open_port(void)
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
void host_gone(const char *why)
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
		if (c->kind == C_PUT) {
			file_put_eof(c);
		} else if (!buf_size(&c->inb)) {
			chan_close_in(c);
			chan_check_done(c);
		}
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
				chan_close_in(c);
				c->in_eof = 1;
			}
		}
		if (flags >= 1 && flags <= 2)
			c->out_done[flags] = 1;
		chan_check_done(c);
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
			int found = 0;
			while (i + HDR_LEN <= n) {
				uint8_t *m = memchr(p + i, MAGIC0, n - i - HDR_LEN + 1);
				if (!m)
					break;
				i = (size_t)(m - p);
				if (header_ok(m) && m[2] == F_HELLO) {
					found = 1;
					break;
				}
				i++;
			}
			if (!found) {   /* keep what may be the start of a header */
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

void port_read(void)
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

void port_write(void)
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

