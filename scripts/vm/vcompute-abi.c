/*
 * Checks the guest driver's ioctl ABI from a guest program (run by
 * scripts/vm/init-device against /dev/vcompute0): each open file is its
 * own session, and every malformed submit is refused with the errno that
 * vcompute_uapi.h documents, before the device sees it; the file still
 * works afterwards. A chain that outlives its timeout fails with
 * ETIMEDOUT and leaves the file usable. Then the device is unbound from the driver while a
 * file is open (device removal): the file's calls fail with ENODEV, its
 * close is clean, and once bound again the device serves a new file.
 * Prints "ABI OK checks=N" or the first failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcompute_uapi.h"

static int checks;

#define CHECK(cond, ...)                                   \
	do {                                               \
		checks++;                                  \
		if (!(cond)) {                             \
			printf("ABI FAIL line %d: ", __LINE__); \
			printf(__VA_ARGS__);               \
			printf("\n");                      \
			exit(1);                           \
		}                                          \
	} while (0)

static unsigned char req[64], resp[4096];

/* A well-formed submit of garbage frames (the device answers it). */
static struct vcompute_submit base(void)
{
	struct vcompute_submit s;

	memset(&s, 0, sizeof(s));
	s.queue = VCOMPUTE_REQUEST_QUEUE;
	s.req_addr = (uintptr_t)req;
	s.req_len = sizeof(req);
	s.resp_addr = (uintptr_t)resp;
	s.resp_len = sizeof(resp);
	return s;
}

static int submit(int fd, struct vcompute_submit *s)
{
	return ioctl(fd, VCOMPUTE_IOC_SUBMIT, s) < 0 ? errno : 0;
}

#define REFUSED(fd, s, want, what)                                          \
	do {                                                                \
		int e = submit(fd, &(s));                                   \
		CHECK(e == (want), "%s: errno %d (%s), expected %d", what, \
		      e, strerror(e), want);                                \
	} while (0)

static void sysfs_write(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(write(fd, value, strlen(value)) == (ssize_t)strlen(value), "write %s to %s: %s",
	      value, path, strerror(errno));
	close(fd);
}

/* Unbinds the node's virtio device from the driver, checks what the open
 * file fd sees, closes it (so that the node's number is free again) and
 * binds the device again. */
static void unbind_and_bind(int fd, const char *node)
{
	char link[256], target[256], *name;
	struct vcompute_submit s;
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/class/vcompute/%s/device", strrchr(node, '/') + 1);
	n = readlink(link, target, sizeof(target) - 1);
	CHECK(n > 0, "readlink %s: %s", link, strerror(errno));
	target[n] = 0;
	name = strrchr(target, '/') + 1; /* virtioN */
	sysfs_write("/sys/bus/virtio/drivers/vcompute/unbind", name);
	CHECK(access(node, F_OK) != 0, "%s still there after unbind", node);
	s = base();
	REFUSED(fd, s, ENODEV, "submit after the device went");
	CHECK(close(fd) == 0, "close after the device went: %s", strerror(errno));
	sysfs_write("/sys/bus/virtio/drivers/vcompute/bind", name);
}

int main(int argc, char **argv)
{
	const char *node = argc > 1 ? argv[1] : "/dev/vcompute0";
	struct vcompute_info i1, i2;
	struct vcompute_buf bufs[2];
	struct vcompute_submit s;
	long page = sysconf(_SC_PAGESIZE);
	int fd = open(node, O_RDWR), fd2;
	void *ro, *gone;

	CHECK(fd >= 0, "open %s: %s", node, strerror(errno));
	fd2 = open(node, O_RDWR);
	CHECK(fd2 >= 0, "second open: %s", strerror(errno));
	CHECK(ioctl(fd, VCOMPUTE_IOC_INFO, &i1) == 0, "INFO: %s", strerror(errno));
	CHECK(ioctl(fd2, VCOMPUTE_IOC_INFO, &i2) == 0, "INFO: %s", strerror(errno));
	CHECK(i1.session != 0 && i2.session != 0 && i1.session != i2.session,
	      "two files, sessions %u and %u", i1.session, i2.session);
	CHECK(i1.protocol_version == VCOMPUTE_PROTOCOL_VERSION && i1.num_request_queues >= 1,
	      "info: protocol %u, %u request queues", i1.protocol_version,
	      i1.num_request_queues);
	CHECK(ioctl(fd, _IO('V', 99)) < 0 && errno == ENOTTY, "unknown ioctl: errno %d", errno);

	s = base(); s.queue = 2;
	REFUSED(fd, s, EINVAL, "queue 2");
	s = base(); s.flags = 0x80;
	REFUSED(fd, s, EINVAL, "unknown flag");
	s = base(); s.reserved = 1;
	REFUSED(fd, s, EINVAL, "reserved");
	s = base(); s.req_len = 0;
	REFUSED(fd, s, EINVAL, "empty request");
	s = base(); s.req_len = VCOMPUTE_MAX_REQUEST_AREA_LEN + 1ull;
	REFUSED(fd, s, EINVAL, "request area too long");
	s = base(); s.resp_len = 0;
	REFUSED(fd, s, EINVAL, "empty response area");
	s = base(); s.resp_len = VCOMPUTE_MAX_RESPONSE_LEN + 1ull;
	REFUSED(fd, s, EINVAL, "response area too long");
	s = base(); s.n_in = VCOMPUTE_MAX_BUFS; s.n_out = 1;
	REFUSED(fd, s, EINVAL, "too many buffers");
	s = base(); s.n_in = 0xffffffffu; s.n_out = 2;
	REFUSED(fd, s, EINVAL, "buffer count overflow");
	bufs[0].addr = (uintptr_t)resp;
	bufs[0].len = VCOMPUTE_MAX_BULK_BYTES + 1ull;
	s = base(); s.in_bufs = (uintptr_t)bufs; s.n_in = 1;
	REFUSED(fd, s, EINVAL, "bulk buffer too long");
	bufs[0].len = VCOMPUTE_MAX_BULK_BYTES / 2 + 1;
	bufs[1] = bufs[0];
	s = base(); s.in_bufs = (uintptr_t)bufs; s.n_in = 2;
	REFUSED(fd, s, EINVAL, "bulk bytes too many together");
	bufs[0].addr = UINT64_MAX - 8;
	bufs[0].len = 64;
	s = base(); s.in_bufs = (uintptr_t)bufs; s.n_in = 1;
	REFUSED(fd, s, EINVAL, "buffer wrapping the address space");

	/* Pointers the program does not own, or may not write. */
	gone = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(gone != MAP_FAILED && ro != MAP_FAILED, "mmap");
	munmap(gone, page);
	s = base(); s.req_addr = (uintptr_t)gone;
	REFUSED(fd, s, EFAULT, "unmapped request");
	s = base(); s.resp_addr = (uintptr_t)ro; s.resp_len = page;
	REFUSED(fd, s, EFAULT, "read-only response area");
	bufs[0].addr = (uintptr_t)ro;
	bufs[0].len = page;
	s = base(); s.out_bufs = (uintptr_t)bufs; s.n_out = 1;
	REFUSED(fd, s, EFAULT, "read-only out-bulk");
	s = base(); s.in_bufs = (uintptr_t)gone; s.n_in = 1;
	REFUSED(fd, s, EFAULT, "unmapped buffer array");
	CHECK(ioctl(fd, VCOMPUTE_IOC_SUBMIT, (void *)gone) < 0 && errno == EFAULT,
	      "unmapped argument: errno %d", errno);
	/* A read-only buffer the device only reads is fine: garbage frames
	 * reach the device, which answers with a status of its own. */
	bufs[0].addr = (uintptr_t)ro;
	bufs[0].len = page;
	s = base(); s.in_bufs = (uintptr_t)bufs; s.n_in = 1;
	memset(req, 0xa5, sizeof(req));
	REFUSED(fd, s, 0, "garbage frames with a read-only in-bulk");
	CHECK(s.status <= VCOMPUTE_STATUS_UNAVAILABLE, "status %u", s.status);
	CHECK(s.status != VCOMPUTE_STATUS_OK || s.response_len <= sizeof(resp),
	      "response_len %u", s.response_len);

	/* A chain that outlives its timeout: ETIMEDOUT, and the driver keeps
	 * its pages pinned until the device is done with them (the device
	 * gathers the 28 MiB in-bulk before it reads the frames; one jiffy
	 * is at most a few ms). The close then waits for it, and the guest
	 * later checks that the kernel logged nothing. */
	{
		size_t big = 28u << 20;
		unsigned char *p = mmap(NULL, big, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd3 = open(node, O_RDWR), e = 0, tries;

		CHECK(p != MAP_FAILED && fd3 >= 0, "28 MiB and a third file");
		memset(p, 0x5a, big);
		bufs[0].addr = (uintptr_t)p;
		bufs[0].len = big;
		for (tries = 0; tries < 20; tries++) {
			s = base();
			s.in_bufs = (uintptr_t)bufs;
			s.n_in = 1;
			s.timeout_ms = 1;
			e = submit(fd3, &s);
			CHECK(e == 0 || e == ETIMEDOUT, "timed submit: errno %d (%s)", e,
			      strerror(e));
			if (e == ETIMEDOUT)
				break;
		}
		CHECK(e == ETIMEDOUT, "no timeout in %d submits of 28 MiB with 1 ms", tries);
		/* The file stays usable while the abandoned chain runs. */
		s = base();
		REFUSED(fd3, s, 0, "a submit after a timed-out one");
		CHECK(close(fd3) == 0, "close after a timeout: %s", strerror(errno));
		munmap(p, big);
	}

	/* Both files still work and still hold their sessions. */
	CHECK(ioctl(fd, VCOMPUTE_IOC_INFO, &i2) == 0 && i2.session == i1.session,
	      "session after refusals");
	close(fd2);

	/* Removal with a file open, then binding again. */
	unbind_and_bind(fd, node);
	fd = -1;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		fd = open(node, O_RDWR);
		if (fd < 0)
			usleep(100000);
	}
	CHECK(fd >= 0, "open after binding again: %s", strerror(errno));
	CHECK(ioctl(fd, VCOMPUTE_IOC_INFO, &i2) == 0 && i2.session != 0,
	      "a session after binding again");
	close(fd);
	printf("ABI OK checks=%d\n", checks);
	return 0;
}
