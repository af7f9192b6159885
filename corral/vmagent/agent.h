/* corral-agent: the guest agent of Corral's virtual machines. Shared declarations.
 * The wire protocol is described in docs/vm-agent.md; the constants here are its source of truth
 * on the guest side (corral/instance/agent/protocol.py is the host side's). */
#ifndef CORRAL_AGENT_H
#define CORRAL_AGENT_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_VERSION 1
#define HDR_LEN 16
#define MAGIC0 0xC0
#define MAGIC1 0xA6
#define MAX_IN_PAYLOAD (64u * 1024)     /* host -> agent frames */
#define MAX_OUT_PAYLOAD (1u << 20)      /* agent -> host frames */
#define DATA_CHUNK (64u * 1024)
#define WINDOW (1024u * 1024)           /* initial credit of every stream, each direction */
#define CREDIT_BATCH (WINDOW / 4)
#define OUTQ_HIGH (4u * 1024 * 1024)    /* stop reading local fds while this much is queued */
#define EXIT_GRACE_MS 300               /* wait for output EOF this long after the exit */
#define AGENT_CHAN_BIT 0x80000000u      /* channel ids the agent allocates */

enum ftype {
	F_HELLO = 1, F_HELLO_ACK = 2, F_EXEC = 3, F_FILE_GET = 4, F_FILE_PUT = 5, F_FILE_DELETE = 6,
	F_STATE = 7, F_REPLY = 8, F_DATA = 9, F_CREDIT = 10, F_EOF = 11, F_SIGNAL = 12, F_RESIZE = 13,
	F_EXIT = 14, F_CLOSE = 15, F_STREAM_OPEN = 16, F_PROTO_ERROR = 17, F_PING = 18, F_PONG = 19,
	F_SHUT = 20,
};

enum tag {
	T_ARG = 1, T_ENV = 2, T_CWD = 3, T_UID = 4, T_GID = 5, T_PTY = 6, T_WIDTH = 7, T_HEIGHT = 8,
	T_PATH = 10, T_KIND = 11, T_MODE = 12, T_APPEND = 13, T_TARGET = 14,
	T_ERRNO = 20, T_MSG = 21, T_PID = 22, T_SIZE = 23, T_MTIME = 24, T_TYPE = 25, T_JSON = 26,
	T_CODE = 27, T_NONCE = 30, T_HOSTNAME = 31, T_VERSION = 32,
};

enum kind { K_FILE = 1, K_DIR = 2, K_SYMLINK = 3 };

/* ---- growable byte buffer: data is p[off, len) ---- */
struct buf {
	uint8_t *p;
	size_t off, len, cap;
};
void buf_reserve(struct buf *b, size_t extra);
void buf_put(struct buf *b, const void *data, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);
static inline size_t buf_size(const struct buf *b) { return b->len - b->off; }
static inline uint8_t *buf_data(const struct buf *b) { return b->p + b->off; }

/* ---- TLV payloads: u8 tag, u32 length (LE), bytes; integers are 8-byte LE ---- */
void tlv_put(struct buf *b, int tag, const void *data, size_t n);
void tlv_str(struct buf *b, int tag, const char *s);
void tlv_int(struct buf *b, int tag, int64_t v);
/* The nth (0-based) field with `tag`: 1 (and data, n set) when present. */
int tlv_get(const uint8_t *p, size_t len, int tag, int nth, const uint8_t **data, size_t *n);
int64_t tlv_int_or(const uint8_t *p, size_t len, int tag, int64_t dflt, int *present);
/* A malloc'd NUL-terminated copy of the nth `tag` string; NULL if absent or holding a NUL. */
char *tlv_strdup(const uint8_t *p, size_t len, int tag, int nth);
int tlv_count(const uint8_t *p, size_t len, int tag);
int tlv_valid(const uint8_t *p, size_t len);

/* ---- framing ---- */
uint32_t crc32_12(const uint8_t *p);
void put_le32(uint8_t *p, uint32_t v);
uint32_t get_le32(const uint8_t *p);
void frame_header(uint8_t *h, int type, int flags, uint32_t chan, uint32_t len);

/* ---- output queue to the host (dropped while no host is synchronised) ---- */
extern struct buf outq;
extern int synced;
void send_frame(int type, int flags, uint32_t chan, const void *payload, size_t n);
void send_tlv(int type, int flags, uint32_t chan, struct buf *tlv);   /* frees tlv */
void send_u32(int type, int flags, uint32_t chan, uint32_t v);
void send_error(uint32_t chan, int err, const char *msg);
void send_ok(uint32_t chan);
/* Read up to `max` bytes from fd straight into a DATA frame: read()'s result (frame sent if > 0). */
ssize_t send_data_from_fd(uint32_t chan, int stream, int fd, size_t max);

/* ---- channels ---- */
enum ckind { C_EXEC = 1, C_GET = 2, C_PUT = 3, C_STREAM = 4 };

struct chan {
	struct chan *next;
	uint32_t id;
	int kind;
	/* stream 0: host -> guest, written to in_fd */
	int in_fd;
	struct buf inb;
	int in_eof;            /* host sent EOF on stream 0 */
	uint32_t rx_unacked;   /* consumed bytes not yet given back as credit */
	/* streams 1, 2: guest -> host, read from out_fd[s] */
	int out_fd[3];
	int64_t credit[3];
	int out_done[3];       /* EOF sent (or reader gone) */
	struct buf mem;        /* C_GET of a directory or symlink: the content */
	int64_t remaining;     /* C_GET of a file: bytes left to send */
	/* exec */
	pid_t pid;
	int pty;
	int errpipe;           /* exec start report, until EOF */
	int replied;
	int exited, code, exit_sent;
	int64_t exit_at;
	/* put */
	int put_fd;
	char *put_tmp, *put_final;
	int put_append;
	int64_t put_uid, put_gid, put_mode;
	int put_err;
};

extern struct chan *chans;
struct chan *chan_new(uint32_t id, int kind);
struct chan *chan_find(uint32_t id);
void chan_free(struct chan *c, int kill_process);
void chan_free_all(void);
void chan_credit_consumed(struct chan *c, size_t n, int force);
void chan_pump_mem(struct chan *c);     /* C_GET from memory: send within credit, EOF at the end */
void chan_close_in(struct chan *c);     /* stream 0 ended: close (shut down) what it was written to */
void chan_check_done(struct chan *c);   /* free it once all its streams ended (exec: and EXIT sent) */

/* exec.c */
int devlxd_query(const char *sock_path, const char *path);   /* query.c: --query */
void exec_start(uint32_t id, const uint8_t *p, size_t len);
void exec_signal(struct chan *c, int sig);
void exec_kill_session(struct chan *c);   /* SIGKILL the command and its whole session */
void exec_resize(struct chan *c, int w, int h);
void exec_reaped(pid_t pid, int status);
void exec_check_done(struct chan *c, int64_t now);

/* files.c */
void file_get(uint32_t id, const uint8_t *p, size_t len);
void file_put(uint32_t id, const uint8_t *p, size_t len);
void file_put_data(struct chan *c, const uint8_t *p, size_t n);
void file_put_eof(struct chan *c);
void file_delete(uint32_t id, const uint8_t *p, size_t len);

/* state.c */
void state_reply(uint32_t id);

/* devlxd.c */
int devlxd_listen(const char *path);
void devlxd_accept(int lfd);

/* link.c: the port to the host */
extern const char *port_path;
extern int port_fd, port_is_socket, port_hup;
extern int64_t next_port_try, next_hup_check;
extern struct buf inb;
#define RETRY_MS 100
int open_port(void);
void host_gone(const char *why);
void port_read(void);
void port_write(void);

/* util */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t now_ms(void);
void set_nonblock(int fd);
ssize_t write_full(int fd, const void *p, size_t n);   /* blocking fds: every byte or -1 */
int read_file_str(const char *path, char *out, size_t n);  /* trailing newline stripped; -1 on error */

#endif
