/*
 * corral-agent --query PATH [--devlxd SOCKET]: one GET of /dev/lxd from inside the guest, the
 * response body on stdout (exit 0 on a 2xx answer, 1 otherwise). The guest has no HTTP client that
 * speaks over a unix socket; this is curl --unix-socket for the /dev/lxd API.
 */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int devlxd_query(const char *sock_path, const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(sock_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "socket path too long\n");
		return 1;
	}
	strcpy(addr.sun_path, sock_path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "connect %s: %s\n", sock_path, strerror(errno));
		return 1;
	}
	char req[4096];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: lxd\r\nUser-Agent: corral-agent\r\n\r\n", path);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		fprintf(stderr, "path too long\n");
		return 1;
	}
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, req + off, n - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("write");
			return 1;
		}
		off += w;
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return 1;
	for (;;) {
		if (len == cap) {
			char *bigger = realloc(buf, cap * 2 + 1);
			if (!bigger)
				return 1;
			buf = bigger;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = 0;
	int status = 0;
	if (sscanf(buf, "HTTP/%*s %d", &status) != 1) {
		fprintf(stderr, "no HTTP answer\n");
		return 1;
	}
	char *body = strstr(buf, "\r\n\r\n");
	body = body ? body + 4 : buf + len;
	fwrite(body, 1, buf + len - body, stdout);
	return status >= 200 && status < 300 ? 0 : 1;
}
