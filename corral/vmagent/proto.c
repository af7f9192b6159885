/* corral-agent: buffers, TLV payloads, frames and the output queue to the host. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct buf outq;
int synced;

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		logmsg("out of memory (%zu bytes)", n);
		abort();
	}
	return q;
}

void buf_reserve(struct buf *b, size_t extra)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + extra <= b->cap)
		return;
	if (b->off > b->cap / 2) {   /* reclaim the consumed prefix first */
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + extra <= b->cap)
			return;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void buf_put(struct buf *b, const void *data, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- TLV ---- */

void tlv_put(struct buf *b, int tag, const void *data, size_t n)
{
	uint8_t h[5];
	h[0] = (uint8_t)tag;
	put_le32(h + 1, (uint32_t)n);
	buf_put(b, h, 5);
	buf_put(b, data, n);
}

void tlv_str(struct buf *b, int tag, const char *s)
{
	tlv_put(b, tag, s, strlen(s));
}

void tlv_int(struct buf *b, int tag, int64_t v)
{
	uint8_t d[8];
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		d[i] = (u >> (8 * i)) & 0xff;
	tlv_put(b, tag, d, 8);
}

int tlv_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (len - i < 5)
			return 0;
		uint32_t n = get_le32(p + i + 1);
		if (n > len - i - 5)
			return 0;
		i += 5 + n;
	}
	return 1;
}

int tlv_get(const uint8_t *p, size_t len, int tag, int nth, const uint8_t **data, size_t *n)
{
	size_t i = 0;
	while (i + 5 <= len) {
		uint32_t l = get_le32(p + i + 1);
		if (l > len - i - 5)
			return 0;
		if (p[i] == tag && nth-- == 0) {
			*data = p + i + 5;
			*n = l;
			return 1;
		}
		i += 5 + l;
	}
	return 0;
}

int tlv_count(const uint8_t *p, size_t len, int tag)
{
	const uint8_t *d;
	size_t n;
	int c = 0;
	while (tlv_get(p, len, tag, c, &d, &n))
		c++;
	return c;
}

int64_t tlv_int_or(const uint8_t *p, size_t len, int tag, int64_t dflt, int *present)
{
	const uint8_t *d;
	size_t n;
	if (present)
		*present = 0;
	if (!tlv_get(p, len, tag, 0, &d, &n) || n != 8)
		return dflt;
	uint64_t u = 0;
	for (int i = 7; i >= 0; i--)
		u = u << 8 | d[i];
	if (present)
		*present = 1;
	return (int64_t)u;
}

char *tlv_strdup(const uint8_t *p, size_t len, int tag, int nth)
{
	const uint8_t *d;
	size_t n;
	if (!tlv_get(p, len, tag, nth, &d, &n) || memchr(d, 0, n))
		return NULL;
	char *s = xrealloc(NULL, n + 1);
	memcpy(s, d, n);
	s[n] = 0;
	return s;
}

/* ---- frames ---- */

uint32_t crc32_12(const uint8_t *p)
{
	uint32_t c = 0xffffffffu;
	for (int i = 0; i < 12; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return c ^ 0xffffffffu;
}

void frame_header(uint8_t *h, int type, int flags, uint32_t chan, uint32_t len)
{
	h[0] = MAGIC0;
	h[1] = MAGIC1;
	h[2] = (uint8_t)type;
	h[3] = (uint8_t)flags;
	put_le32(h + 4, chan);
	put_le32(h + 8, len);
	put_le32(h + 12, crc32_12(h));
}

void send_frame(int type, int flags, uint32_t chan, const void *payload, size_t n)
{
	if (!synced)
		return;
	uint8_t h[HDR_LEN];
	frame_header(h, type, flags, chan, (uint32_t)n);
	buf_put(&outq, h, HDR_LEN);
	buf_put(&outq, payload, n);
}

void send_tlv(int type, int flags, uint32_t chan, struct buf *tlv)
{
	send_frame(type, flags, chan, buf_data(tlv), buf_size(tlv));
	buf_free(tlv);
}

void send_u32(int type, int flags, uint32_t chan, uint32_t v)
{
	uint8_t d[4];
	put_le32(d, v);
	send_frame(type, flags, chan, d, 4);
}

void send_error(uint32_t chan, int err, const char *msg)
{
	struct buf t = {0};
	tlv_int(&t, T_ERRNO, err ? err : EIO);
	tlv_str(&t, T_MSG, msg ? msg : strerror(err));
	send_tlv(F_REPLY, 0, chan, &t);
}

void send_ok(uint32_t chan)
{
	struct buf t = {0};
	tlv_int(&t, T_ERRNO, 0);
	send_tlv(F_REPLY, 0, chan, &t);
}

ssize_t send_data_from_fd(uint32_t chan, int stream, int fd, size_t max)
{
	if (max > DATA_CHUNK)
		max = DATA_CHUNK;
	buf_reserve(&outq, HDR_LEN + max);
	uint8_t *h = outq.p + outq.len;
	ssize_t r;
	do
		r = read(fd, h + HDR_LEN, max);
	while (r < 0 && errno == EINTR);
	if (r > 0 && synced) {
		frame_header(h, F_DATA, stream, chan, (uint32_t)r);
		outq.len += HDR_LEN + (size_t)r;
	}
	return r;
}

/* ---- utilities ---- */

void logmsg(const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(line, sizeof(line), "%lld.%03ld corral-agent[%d]: ", (long long)ts.tv_sec,
			 ts.tv_nsec / 1000000, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	int saved = errno;
	(void)!write(2, line, len);
	errno = saved;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

ssize_t write_full(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, c + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)done;
}

int read_file_str(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r;
	do
		r = read(fd, out, n - 1);
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r < 0)
		return -1;
	out[r] = 0;
	while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == ' '))
		out[--r] = 0;
	return (int)r;
}
