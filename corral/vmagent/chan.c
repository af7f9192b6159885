/* corral-agent: the channel table. */
#include "agent.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

struct chan *chans;

struct chan *chan_new(uint32_t id, int kind)
{
	struct chan *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->id = id;
	c->kind = kind;
	c->in_fd = c->out_fd[0] = c->out_fd[1] = c->out_fd[2] = c->errpipe = c->put_fd = -1;
	c->out_done[0] = 1;
	c->credit[1] = c->credit[2] = WINDOW;
	c->next = chans;
	chans = c;
	return c;
}

struct chan *chan_find(uint32_t id)
{
	for (struct chan *c = chans; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void closefd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void chan_free(struct chan *c, int kill_process)
{
	for (struct chan **pp = &chans; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->kind == C_EXEC && kill_process)
		exec_kill_session(c);
	closefd(&c->in_fd);
	closefd(&c->out_fd[1]);
	closefd(&c->out_fd[2]);
	closefd(&c->errpipe);
	closefd(&c->put_fd);
	if (c->put_tmp)
		unlink(c->put_tmp);
	free(c->put_tmp);
	free(c->put_final);
	buf_free(&c->inb);
	buf_free(&c->mem);
	free(c);
}

void chan_free_all(void)
{
	while (chans)
		chan_free(chans, 1);
}

void chan_credit_consumed(struct chan *c, size_t n, int force)
{
	c->rx_unacked += (uint32_t)n;
	if (c->rx_unacked && (c->rx_unacked >= CREDIT_BATCH || force)) {
		send_u32(F_CREDIT, 0, c->id, c->rx_unacked);
		c->rx_unacked = 0;
	}
}

void chan_pump_mem(struct chan *c)
{
	while (buf_size(&c->mem) && c->credit[1] > 0) {
		size_t n = buf_size(&c->mem);
		if (n > DATA_CHUNK)
			n = DATA_CHUNK;
		if ((int64_t)n > c->credit[1])
			n = (size_t)c->credit[1];
		send_frame(F_DATA, 1, c->id, buf_data(&c->mem), n);
		buf_consume(&c->mem, n);
		c->credit[1] -= (int64_t)n;
	}
	if (!buf_size(&c->mem)) {
		send_frame(F_EOF, 1, c->id, NULL, 0);
		chan_free(c, 0);
	}
}

void chan_close_in(struct chan *c)
{
	if (c->in_fd < 0)
		return;
	if (c->kind == C_STREAM)
		shutdown(c->in_fd, SHUT_WR);
	close(c->in_fd);
	c->in_fd = -1;
}

void chan_check_done(struct chan *c)
{
	if (c->kind == C_EXEC)
		exec_check_done(c, now_ms());
	else if (c->kind == C_GET && c->out_done[1])
		chan_free(c, 0);
	else if (c->kind == C_STREAM && c->in_fd < 0 && c->out_done[1])
		chan_free(c, 0);
}
