/* A tiny static HTTP client for /dev/lxd/sock inside busybox containers (busybox nc has no unix sockets).
 * usage: devlxd_client PATH [ws SECONDS]
 * Prints the raw response (status line, headers, body). With "ws", sends a websocket upgrade and
 * prints whatever arrives for SECONDS seconds (server frames are unmasked, so text shows as is). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PATH [ws SECONDS]\n", argv[0]); return 2; }
    const char *sockpath = getenv("DEVLXD_SOCK") ? getenv("DEVLXD_SOCK") : "/dev/lxd/sock";
    int ws = argc >= 4 && strcmp(argv[2], "ws") == 0;
    int seconds = ws ? atoi(argv[3]) : 10;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    strncpy(sa.sun_path, sockpath, sizeof(sa.sun_path) - 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("connect"); return 1; }
    char req[1024];
    if (ws)
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: lxd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", argv[1]);
    else
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: lxd\r\n\r\n", argv[1]);
    if (write(fd, req, strlen(req)) < 0) { perror("write"); return 1; }
    time_t end = time(NULL) + seconds;
    char buf[4096];
    for (;;) {
        int left = (int)(end - time(NULL));
        if (left <= 0) break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left * 1000) <= 0) break;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) break;
        fwrite(buf, 1, n, stdout);
        fflush(stdout);
    }
    return 0;
}
