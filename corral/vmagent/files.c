/* corral-agent: files for LXD's file API (stat/get, put of files, directories and symlinks, delete).
 * Semantics follow corral/instance/files.py (LXD 5.0's): an overwritten file keeps its owner and
 * mode and is replaced through a temporary file and rename(2); append needs an existing file;
 * a final symlink is followed for writes; new files default to 0:0 0644, new directories 0:0 0750;
 * an existing directory, or an existing symlink with the same target, is a success. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *get_path(uint32_t id, const uint8_t *p, size_t len)
{
	char *path = tlv_strdup(p, len, T_PATH, 0);
	if (!path || path[0] != '/') {
		send_error(id, EINVAL, "Invalid path: must be absolute, without NUL bytes");
		free(path);
		return NULL;
	}
	return path;
}

static void fail(uint32_t id, const char *what, const char *path, int err)
{
	char msg[PATH_MAX + 128];
	snprintf(msg, sizeof(msg), "Failed to %s '%s': %s", what, path, strerror(err));
	send_error(id, err, msg);
}

static int kind_of(mode_t m)
{
	return S_ISDIR(m) ? K_DIR : S_ISLNK(m) ? K_SYMLINK : K_FILE;
}

void file_get(uint32_t id, const uint8_t *p, size_t len)
{
	char *path = get_path(id, p, len);
	if (!path)
		return;
	struct stat st;
	struct buf mem = {0};
	int fd = -1;
	if (lstat(path, &st) < 0) {
		fail(id, "read", path, errno);
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target));
		if (n < 0) {
			fail(id, "read link", path, errno);
			goto out;
		}
		buf_put(&mem, target, (size_t)n);
	} else if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d) {
			fail(id, "list", path, errno);
			goto out;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			buf_put(&mem, e->d_name, strlen(e->d_name) + 1);
		}
		closedir(d);
	} else if (S_ISREG(st.st_mode)) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 || fstat(fd, &st) < 0) {
			fail(id, "read", path, errno);
			goto out;
		}
	} else {
		char msg[PATH_MAX + 64];
		snprintf(msg, sizeof(msg), "Failed to read '%s': not a regular file", path);
		send_error(id, EINVAL, msg);
		goto out;
	}
	struct buf t = {0};
	tlv_int(&t, T_ERRNO, 0);
	tlv_int(&t, T_TYPE, kind_of(st.st_mode));
	tlv_int(&t, T_UID, st.st_uid);
	tlv_int(&t, T_GID, st.st_gid);
	tlv_int(&t, T_MODE, st.st_mode & 07777);
	tlv_int(&t, T_SIZE, st.st_size);
	tlv_int(&t, T_MTIME, (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
	send_tlv(F_REPLY, 0, id, &t);
	struct chan *c = chan_new(id, C_GET);
	c->replied = 1;
	c->out_done[2] = 1;
	if (fd >= 0) {
		c->out_fd[1] = fd;
		c->remaining = st.st_size;   /* what the reply announced, never more */
		fd = -1;
		if (c->remaining == 0) {
			send_frame(F_EOF, 1, id, NULL, 0);
			chan_free(c, 0);
		}
	} else {
		c->mem = mem;
		memset(&mem, 0, sizeof(mem));
		chan_pump_mem(c);
	}
out:
	if (fd >= 0)
		close(fd);
	buf_free(&mem);
	free(path);
}

/* Follow a final symlink chain the way files.py does: the path of the first component that is
 * not a symlink (*exists: whether it exists, *st its lstat). NULL with errno set on failure. */
static char *follow_final(const char *path, struct stat *st, int *exists)
{
	char *cur = strdup(path);
	for (int hop = 0; cur && hop < 40; hop++) {
		if (lstat(cur, st) < 0) {
			if (errno != ENOENT)
				break;
			*exists = 0;
			return cur;
		}
		if (!S_ISLNK(st->st_mode)) {
			*exists = 1;
			return cur;
		}
		char target[PATH_MAX];
		ssize_t n = readlink(cur, target, sizeof(target) - 1);
		if (n <= 0) {
			if (n == 0)
				errno = ENOENT;
			break;
		}
		target[n] = 0;
		char *next;
		if (target[0] == '/') {
			next = strdup(target);
		} else {
			char *slash = strrchr(cur, '/');
			*slash = 0;
			if (asprintf(&next, "%s/%s", cur, target) < 0)
				next = NULL;
		}
		free(cur);
		cur = next;
		if (hop == 39)
			errno = ELOOP;
	}
	int e = errno;
	free(cur);
	errno = e ? e : ELOOP;
	return NULL;
}

static char *temp_name(const char *final)
{
	static unsigned counter;
	const char *slash = strrchr(final, '/');
	char *tmp;
	if (asprintf(&tmp, "%.*s/.%.200s.corral-%x%04x%llx", (int)(slash - final), final, slash + 1,
		     (unsigned)getpid(), ++counter & 0xffff, (unsigned long long)now_ms()) < 0)
		return NULL;
	return tmp;
}

static void put_file(uint32_t id, char *path, int64_t uid, int64_t gid, int64_t mode, int append)
{
	struct stat st;
	int exists = 0;
	char *final = follow_final(path, &st, &exists);
	if (!final) {
		fail(id, "write", path, errno);
		return;
	}
	if (exists && S_ISDIR(st.st_mode)) {
		fail(id, "write", path, EISDIR);
		free(final);
		return;
	}
	if (exists && !S_ISREG(st.st_mode)) {
		char msg[PATH_MAX + 64];
		snprintf(msg, sizeof(msg), "Failed to write '%s': not a regular file", path);
		send_error(id, EINVAL, msg);
		free(final);
		return;
	}
	struct chan *c = chan_new(id, C_PUT);
	c->replied = 1;
	c->put_final = final;
	c->put_append = append;
	if (append) {
		c->put_fd = open(final, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		c->put_uid = c->put_gid = c->put_mode = -1;   /* append never changes them */
	} else {
		if (exists) {   /* an overwrite keeps the owner and the mode */
			uid = st.st_uid;
			gid = st.st_gid;
			mode = st.st_mode & 07777;
		}
		c->put_uid = uid < 0 ? 0 : uid;
		c->put_gid = gid < 0 ? 0 : gid;
		c->put_mode = mode < 0 ? 0644 : mode;
		for (int i = 0; i < 8; i++) {
			free(c->put_tmp);
			c->put_tmp = temp_name(final);
			if (!c->put_tmp)
				break;
			c->put_fd = open(c->put_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (c->put_fd >= 0 || errno != EEXIST)
				break;
		}
		if (c->put_fd < 0) {
			free(c->put_tmp);
			c->put_tmp = NULL;
		}
	}
	if (c->put_fd < 0) {
		fail(id, "write", path, errno);
		chan_free(c, 0);
	}
	/* No reply yet: the data follows, the reply comes after its EOF (or at the first error). */
}

void file_put_data(struct chan *c, const uint8_t *p, size_t n)
{
	if (write_full(c->put_fd, p, n) < 0) {
		fail(c->id, "write", c->put_final, errno);
		chan_free(c, 0);
		return;
	}
	chan_credit_consumed(c, n, 0);
}

void file_put_eof(struct chan *c)
{
	int fd = c->put_fd;
	c->put_fd = -1;
	if (c->put_uid >= 0 && fchown(fd, (uid_t)c->put_uid, (gid_t)c->put_gid) < 0)
		goto fail;
	if (c->put_mode >= 0 && fchmod(fd, (mode_t)c->put_mode) < 0)   /* after chown, which clears setuid */
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (c->put_tmp) {
		if (rename(c->put_tmp, c->put_final) < 0)
			goto fail;
		free(c->put_tmp);
		c->put_tmp = NULL;
	}
	send_ok(c->id);
	chan_free(c, 0);
	return;
fail:
	fail(c->id, "write", c->put_final, errno);
	if (fd >= 0)
		close(fd);
	chan_free(c, 0);
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void file_put(uint32_t id, const uint8_t *p, size_t len)
{
	char *path = get_path(id, p, len);
	if (!path)
		return;
	int has_uid, has_gid, has_mode;
	int64_t uid = tlv_int_or(p, len, T_UID, -1, &has_uid);
	int64_t gid = tlv_int_or(p, len, T_GID, -1, &has_gid);
	int64_t mode = tlv_int_or(p, len, T_MODE, -1, &has_mode);
	int kind = (int)tlv_int_or(p, len, T_KIND, K_FILE, NULL);
	int append = (int)tlv_int_or(p, len, T_APPEND, 0, NULL);
	if (uid < -1 || uid > 0xfffffffeLL || gid < -1 || gid > 0xfffffffeLL || mode < -1 || mode > 07777) {
		send_error(id, EINVAL, "Invalid uid, gid or mode");
		goto out;
	}
	if (kind == K_FILE) {
		put_file(id, path, uid, gid, mode, append);
	} else if (kind == K_DIR) {
		if (is_dir(path)) {
			send_ok(id);
		} else if (mkdir(path, 0700) < 0) {
			fail(id, "create directory", path, errno);
		} else if (chown(path, uid < 0 ? 0 : (uid_t)uid, gid < 0 ? 0 : (gid_t)gid) < 0 ||
			   chmod(path, mode < 0 ? 0750 : (mode_t)mode) < 0) {
			fail(id, "create directory", path, errno);
		} else {
			send_ok(id);
		}
	} else if (kind == K_SYMLINK) {
		char *target = tlv_strdup(p, len, T_TARGET, 0);
		if (!target || !*target) {
			send_error(id, EINVAL, "Invalid symlink target");
		} else if (symlink(target, path) < 0) {
			char cur[PATH_MAX];
			int e = errno;
			ssize_t n = e == EEXIST ? readlink(path, cur, sizeof(cur) - 1) : -1;
			if (n >= 0 && (cur[n] = 0, strcmp(cur, target) == 0))
				send_ok(id);
			else
				fail(id, "create symlink", path, e);
		} else if ((has_uid || has_gid) &&
			   lchown(path, has_uid ? (uid_t)uid : (uid_t)-1, has_gid ? (gid_t)gid : (gid_t)-1) < 0) {
			fail(id, "create symlink", path, errno);
		} else {
			send_ok(id);
		}
		free(target);
	} else {
		send_error(id, EINVAL, "Invalid file type");
	}
out:
	free(path);
}

void file_delete(uint32_t id, const uint8_t *p, size_t len)
{
	char *path = get_path(id, p, len);
	if (!path)
		return;
	struct stat st;
	if (strspn(path, "/") == strlen(path))
		send_error(id, EINVAL, "Refusing to delete the root directory");
	else if (lstat(path, &st) < 0 || (S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path)) < 0)
		fail(id, "delete", path, errno);
	else
		send_ok(id);
	free(path);
}
