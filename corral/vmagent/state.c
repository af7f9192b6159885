/* corral-agent: the guest's state as JSON in LXD's field names (api.InstanceState's processes,
 * memory, network, cpu and disk parts), the way LXD's own lxd-agent reads them. */
#include "agent.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PF_KTHREAD 0x00200000

static void jprintf(struct buf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jprintf(struct buf *j, const char *fmt, ...)
{
	va_list ap;
	buf_reserve(j, 256);
	va_start(ap, fmt);
	int n = vsnprintf((char *)j->p + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= j->cap - j->len) {   /* did not fit: again with room */
		buf_reserve(j, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf((char *)j->p + j->len, j->cap - j->len, fmt, ap);
		va_end(ap);
	}
	j->len += (size_t)n;
}

static void jstr(struct buf *j, const char *s)
{
	buf_put(j, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			jprintf(j, "\\%c", ch);
		else if (ch < 0x20)
			jprintf(j, "\\u%04x", ch);
		else
			buf_put(j, s, 1);
	}
	buf_put(j, "\"", 1);
}

/* Processes other than kernel threads. */
static int count_processes(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], st[1024];
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (read_file_str(path, st, sizeof(st)) < 0)
			continue;
		char *rp = strrchr(st, ')');
		unsigned long flags = 0;
		char state;
		int ppid, pgrp, session, tty, tpgid;
		if (rp && sscanf(rp + 1, " %c %d %d %d %d %d %lu", &state, &ppid, &pgrp, &session, &tty, &tpgid,
				 &flags) == 7 && (flags & PF_KTHREAD))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static long long meminfo(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtoll(p + strlen(key), NULL, 10) * 1024 : 0;
}

static long long read_ll(const char *path, long long dflt)
{
	char s[64];
	if (read_file_str(path, s, sizeof(s)) <= 0)
		return dflt;
	char *end;
	long long v = strtoll(s, &end, 10);
	return *end ? dflt : v;
}

static void memory(struct buf *j)
{
	static long long peak, swap_peak;   /* the highest seen, when the kernel keeps no peak */
	char text[8192];
	if (read_file_str("/proc/meminfo", text, sizeof(text)) < 0)
		text[0] = 0;
	long long total = meminfo(text, "MemTotal:"), free_ = meminfo(text, "MemFree:");
	long long swap = meminfo(text, "SwapTotal:") - meminfo(text, "SwapFree:");
	long long usage = total - free_;
	if (usage > peak)
		peak = usage;
	if (swap > swap_peak)
		swap_peak = swap;
	long long kpeak = read_ll("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", -1);
	if (kpeak < 0)
		kpeak = read_ll("/sys/fs/cgroup/memory.peak", -1);
	jprintf(j, "\"memory\":{\"usage\":%lld,\"usage_peak\":%lld,\"swap_usage\":%lld,\"swap_usage_peak\":%lld,"
		   "\"total\":%lld}", usage, kpeak > 0 ? kpeak : peak, swap, swap_peak, total);
}

static void cpu(struct buf *j)
{
	char text[512];
	unsigned long long v[8] = {0};
	long long usage = -1;
	long hz = sysconf(_SC_CLK_TCK);
	if (read_file_str("/proc/stat", text, sizeof(text)) > 0 && hz > 0 &&
	    sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &v[6], &v[7]) == 8)
		usage = (long long)((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ULL / (unsigned long)hz));
	jprintf(j, "\"cpu\":{\"usage\":%lld}", usage);
}

static void disk(struct buf *j)
{
	struct statvfs sv;
	if (statvfs("/", &sv) == 0)
		jprintf(j, "\"disk\":{\"/\":{\"usage\":%llu,\"total\":%llu}}",
			(unsigned long long)(sv.f_blocks - sv.f_bfree) * sv.f_frsize,
			(unsigned long long)sv.f_blocks * sv.f_frsize);
	else
		jprintf(j, "\"disk\":{}");
}

static int prefix_len(const struct sockaddr *mask)
{
	const unsigned char *b;
	size_t n;
	if (!mask)
		return 0;
	if (mask->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
		n = 4;
	} else {
		b = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
		n = 16;
	}
	int bits = 0;
	for (size_t i = 0; i < n; i++)
		bits += __builtin_popcount(b[i]);
	return bits;
}

static void addresses(struct buf *j, struct ifaddrs *all, const char *name)
{
	int first = 1;
	buf_put(j, "[", 1);
	for (struct ifaddrs *a = all; a; a = a->ifa_next) {
		if (!a->ifa_addr || strcmp(a->ifa_name, name) != 0)
			continue;
		int fam = a->ifa_addr->sa_family;
		if (fam != AF_INET && fam != AF_INET6)
			continue;
		char addr[INET6_ADDRSTRLEN] = "";
		const void *src = fam == AF_INET ? (const void *)&((struct sockaddr_in *)a->ifa_addr)->sin_addr
						 : (const void *)&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
		inet_ntop(fam, src, addr, sizeof(addr));
		const char *scope = "global";   /* as lxd-agent decides it, from the address */
		if (!strncmp(addr, "127", 3) || !strcmp(addr, "::1"))
			scope = "local";
		else if (!strncmp(addr, "169.254", 7) || !strncmp(addr, "fe80:", 5))
			scope = "link";
		jprintf(j, "%s{\"family\":\"%s\",\"address\":\"%s\",\"netmask\":\"%d\",\"scope\":\"%s\"}",
			first ? "" : ",", fam == AF_INET ? "inet" : "inet6", addr, prefix_len(a->ifa_netmask), scope);
		first = 0;
	}
	buf_put(j, "]", 1);
}

static void network(struct buf *j)
{
	struct ifaddrs *all = NULL;
	jprintf(j, "\"network\":{");
	if (getifaddrs(&all) < 0) {
		buf_put(j, "}", 1);
		return;
	}
	int first = 1;
	for (struct ifaddrs *a = all; a; a = a->ifa_next) {
		if (!a->ifa_addr || a->ifa_addr->sa_family != AF_PACKET)
			continue;
		const struct sockaddr_ll *ll = (const struct sockaddr_ll *)a->ifa_addr;
		char hw[3 * 32] = "";
		int nonzero = 0;
		for (int i = 0; i < ll->sll_halen && i < 32; i++)
			nonzero |= ll->sll_addr[i];
		size_t hl = 0;
		for (int i = 0; nonzero && i < ll->sll_halen && i < 32; i++)
			hl += (size_t)snprintf(hw + hl, sizeof(hw) - hl, "%s%02x", i ? ":" : "", ll->sll_addr[i]);
		unsigned fl = a->ifa_flags;
		const char *type = fl & IFF_BROADCAST ? "broadcast" : fl & IFF_LOOPBACK ? "loopback"
				 : fl & IFF_POINTOPOINT ? "point-to-point" : "unknown";
		char path[512];
		snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", a->ifa_name);
		long long mtu = read_ll(path, 0);
		static const char *const stat_file[] = {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
							"rx_errors", "tx_errors", "tx_dropped", "rx_dropped"};
		static const char *const stat_key[] = {"bytes_received", "bytes_sent", "packets_received",
						       "packets_sent", "errors_received", "errors_sent",
						       "packets_dropped_outbound", "packets_dropped_inbound"};
		if (!first)
			buf_put(j, ",", 1);
		first = 0;
		jstr(j, a->ifa_name);
		jprintf(j, ":{\"addresses\":");
		addresses(j, all, a->ifa_name);
		jprintf(j, ",\"counters\":{");
		for (int i = 0; i < 8; i++) {
			snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", a->ifa_name, stat_file[i]);
			jprintf(j, "%s\"%s\":%lld", i ? "," : "", stat_key[i], read_ll(path, 0));
		}
		jprintf(j, "},\"hwaddr\":\"%s\",\"host_name\":\"\",\"mtu\":%lld,\"state\":\"%s\",\"type\":\"%s\"}", hw,
			mtu, fl & IFF_UP ? "up" : "down", type);
	}
	freeifaddrs(all);
	buf_put(j, "}", 1);
}

void state_reply(uint32_t id)
{
	struct buf j = {0};
	jprintf(&j, "{\"processes\":%d,", count_processes());
	memory(&j);
	buf_put(&j, ",", 1);
	cpu(&j);
	buf_put(&j, ",", 1);
	disk(&j);
	buf_put(&j, ",", 1);
	network(&j);
	buf_put(&j, "}", 1);
	struct buf t = {0};
	tlv_int(&t, T_ERRNO, 0);
	tlv_put(&t, T_JSON, buf_data(&j), buf_size(&j));
	buf_free(&j);
	send_tlv(F_REPLY, 0, id, &t);
}
