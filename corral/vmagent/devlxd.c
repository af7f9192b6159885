/* corral-agent: /dev/lxd inside the VM. Every connection to the socket becomes a byte-stream
 * channel to the host (STREAM_OPEN), where corrald answers the HTTP requests on it. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static uint32_t next_stream = 1;

static void mkdirs(const char *path)
{
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
}

int devlxd_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		logmsg("devlxd path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	mkdirs(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 || listen(fd, 64) < 0) {
		logmsg("devlxd socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	logmsg("devlxd listening on %s", path);
	return fd;
}

void devlxd_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (!synced) {   /* no host to answer it */
			close(fd);
			continue;
		}
		uint32_t id;
		do {
			id = AGENT_CHAN_BIT | (next_stream++ & ~AGENT_CHAN_BIT);
		} while (id == AGENT_CHAN_BIT || chan_find(id));
		struct chan *c = chan_new(id, C_STREAM);
		c->replied = 1;
		c->in_fd = fd;
		c->out_fd[1] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		c->out_done[2] = 1;
		struct buf t = {0};
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			tlv_int(&t, T_PID, cred.pid);
			tlv_int(&t, T_UID, cred.uid);
			tlv_int(&t, T_GID, cred.gid);
		}
		send_tlv(F_STREAM_OPEN, 0, id, &t);
	}
}
