// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * virtio-compute guest driver.
 *
 * Binds the virtio-compute device (VCOMPUTE_DEVICE_ID, or a carrier
 * device given by carrier_id, for testing), and gives each open file of
 * /dev/vcomputeN its own device session. VCOMPUTE_IOC_SUBMIT pins the
 * program's buffers in place and hands them to the device as one chain
 * (see protocol/src/device.rs for the layout):
 *
 *   [R header+table][R request area][R in-bulk...][W status][W response][W out-bulk...]
 *
 * Ownership: a request is freed by whoever sees it last. The submitter
 * frees it once it completed; a submitter that was killed or timed out
 * marks it abandoned and the completion path frees it. Pages the device
 * may still write are therefore never unpinned before the device is done
 * with them, or before it was reset (device removal).
 *
 * Lifetime: each virtio device is a struct device with a char device
 * (/dev/vcomputeN, through devtmpfs); the struct device's refcount keeps it
 * while the device is bound, while a file is open and while a request of
 * that file lives. A char device, not a misc device: open() waits for the
 * device's answer to Open, which must not happen under misc_open's global
 * lock.
 *
 * Locking: each queue has a mutex serializing every virtqueue call on it
 * (add, kick, get_buf, detach). The interrupt callback only schedules the
 * queue's work, which reaps completions in process context, so adding may
 * allocate with GFP_KERNEL (the indirect table of a long chain) and
 * unpinning may sleep.
 */
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/idr.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "vcompute_uapi.h"

static unsigned int carrier_id;
module_param(carrier_id, uint, 0444);
MODULE_PARM_DESC(carrier_id,
		 "also bind this virtio device ID as a carrier (testing only; 0: none)");

static unsigned int mode = 0660;
module_param(mode, uint, 0444);
MODULE_PARM_DESC(mode, "permissions of /dev/vcomputeN (default 0660)");

static unsigned int poll_us = 50;
module_param(poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us, "busy-poll time of VCOMPUTE_SUBMIT_POLL, microseconds");

/* How long release() waits for a closing file's chains before it leaves
 * them (still pinned) to the completion path. */
#define RELEASE_WAIT (5 * HZ)
/* How long open() and release() wait for the Open and Close chains. */
#define CONTROL_WAIT (30 * HZ)

struct vc_queue {
	struct virtqueue *vq;
	struct mutex lock; /* every virtqueue call on vq */
	struct work_struct reap;
	wait_queue_head_t space; /* reaped changed */
	unsigned long reaped; /* chains reaped so far */
	bool dead; /* vq is going: no more calls */
};

struct vc_dev {
	struct device dev; /* refs: the binding, each open file */
	struct cdev cdev;
	struct virtio_device *vdev;
	struct vc_queue q[2];
	unsigned int max_segment; /* longest descriptor the DMA path maps */
	struct vcompute_info info; /* session field unused */
};

struct vc_file {
	struct kref ref; /* the file, each of its requests */
	struct vc_dev *dev;
	u32 session;
	atomic_t inflight;
	wait_queue_head_t idle; /* inflight reached zero */
};

struct vc_pinned {
	struct page **pages;
	unsigned int npages;
	bool write;
	struct sg_table sgt;
};

struct vc_req {
	struct vc_file *file;
	struct vc_queue *q;
	wait_queue_head_t done_wq;
	bool done;      /* set under q->lock (release), read with acquire */
	bool abandoned; /* under q->lock */
	int err;        /* set with done */
	u8 *hdr;        /* device header + table: device-readable */
	size_t hdr_len;
	u8 *status;     /* STATUS_LEN bytes: device-writable, own allocation */
	struct scatterlist hdr_sg, status_sg, empty_sg;
	struct vc_pinned *bufs; /* request, in-bulk..., response, out-bulk... */
	unsigned int nbufs;
};

/* Most devices one guest binds. */
#define VC_MINORS 64

static DEFINE_IDA(vc_ida);
static dev_t vc_devt;
static struct class *vc_class;

/* ------------------------------------------------------------------ */
/* Requests */

static void vc_file_free(struct kref *ref);

static void vc_req_free(struct vc_req *req)
{
	unsigned int i;

	for (i = 0; i < req->nbufs; i++) {
		struct vc_pinned *b = &req->bufs[i];

		if (b->sgt.sgl)
			sg_free_table(&b->sgt);
		if (b->pages) {
			/* Marks device-written pages dirty; may sleep. */
			unpin_user_pages_dirty_lock(b->pages, b->npages, b->write);
			kvfree(b->pages);
		}
	}
	kfree(req->bufs);
	kfree(req->hdr);
	kfree(req->status);
	if (atomic_dec_and_test(&req->file->inflight))
		wake_up(&req->file->idle);
	kref_put(&req->file->ref, vc_file_free);
	kfree(req);
}

static struct vc_req *vc_req_alloc(struct vc_file *f, unsigned int queue,
				   size_t table_entries, unsigned int nbufs)
{
	struct vc_req *req = kzalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return NULL;
	req->hdr_len = VCOMPUTE_DEVICE_HEADER_LEN + 2 * table_entries;
	req->hdr = kzalloc(req->hdr_len, GFP_KERNEL);
	req->status = kzalloc(VCOMPUTE_STATUS_LEN, GFP_KERNEL);
	req->bufs = nbufs ? kcalloc(nbufs, sizeof(*req->bufs), GFP_KERNEL) : NULL;
	req->file = f;
	req->q = &f->dev->q[queue];
	init_waitqueue_head(&req->done_wq);
	kref_get(&f->ref);
	atomic_inc(&f->inflight);
	if (!req->hdr || !req->status || (nbufs && !req->bufs)) {
		vc_req_free(req);
		return NULL;
	}
	req->nbufs = nbufs;
	sg_init_one(&req->hdr_sg, req->hdr, req->hdr_len);
	sg_init_one(&req->status_sg, req->status, VCOMPUTE_STATUS_LEN);
	return req;
}

static void vc_put_header(struct vc_req *req, u16 op, u32 session,
			  u16 req_descs, u16 resp_descs)
{
	__le32 *w = (__le32 *)req->hdr;
	__le16 *h = (__le16 *)req->hdr;

	w[0] = cpu_to_le32(VCOMPUTE_DEVICE_MAGIC);
	h[2] = cpu_to_le16(op);
	h[3] = 0;
	w[2] = cpu_to_le32(session);
	h[6] = cpu_to_le16(req_descs);
	h[7] = cpu_to_le16(resp_descs);
}

/* Called with q->lock held, once per request. */
static void vc_complete(struct vc_req *req, int err)
{
	req->err = err;
	if (req->abandoned) {
		vc_req_free(req);
		return;
	}
	smp_store_release(&req->done, true);
	wake_up(&req->done_wq);
}

/* Reaps every used buffer. Called with q->lock held. */
static void vc_drain(struct vc_queue *q)
{
	struct vc_req *req;
	unsigned int len;
	bool any = false;

	while ((req = virtqueue_get_buf(q->vq, &len))) {
		vc_complete(req, 0);
		any = true;
	}
	if (any) {
		WRITE_ONCE(q->reaped, q->reaped + 1);
		wake_up(&q->space);
	}
}

static void vc_reap(struct work_struct *work)
{
	struct vc_queue *q = container_of(work, struct vc_queue, reap);

	mutex_lock(&q->lock);
	if (!q->dead) {
		do {
			virtqueue_disable_cb(q->vq);
			vc_drain(q);
		} while (!virtqueue_enable_cb(q->vq));
	}
	mutex_unlock(&q->lock);
}

/* Interrupt context: only hand over to process context. */
static void vc_vq_done(struct virtqueue *vq)
{
	struct vc_dev *dev = vq->vdev->priv;

	queue_work(system_highpri_wq, &dev->q[vq->index].reap);
}

/*
 * Adds the request's chain and waits for it. Returns 0 once the device
 * completed it (its status is then valid), or an error. *gone says that
 * the request now belongs to the completion path (the caller was killed
 * or timed out after the chain was added) and must not be touched.
 */
static int vc_run(struct vc_req *req, struct scatterlist **sgs, unsigned int nout,
		  unsigned int nin, bool poll, long timeout, bool *gone)
{
	struct vc_queue *q = req->q;
	unsigned long seen;
	long left;
	int err;

	*gone = false;
	for (;;) {
		mutex_lock(&q->lock);
		if (q->dead) {
			mutex_unlock(&q->lock);
			return -ENODEV;
		}
		err = virtqueue_add_sgs(q->vq, sgs, nout, nin, req, GFP_KERNEL);
		if (err == 0) {
			virtqueue_kick(q->vq);
			mutex_unlock(&q->lock);
			break;
		}
		/* -ENOSPC on an empty ring: the chain can never fit. */
		if (err != -ENOSPC ||
		    q->vq->num_free == virtqueue_get_vring_size(q->vq)) {
			mutex_unlock(&q->lock);
			return err == -ENOSPC ? -ENOMEM : err;
		}
		seen = q->reaped;
		mutex_unlock(&q->lock);
		/* Never reads q->vq here: it is freed once q->dead is set. */
		if (wait_event_killable(q->space, READ_ONCE(q->reaped) != seen ||
						  READ_ONCE(q->dead)))
			return -EINTR; /* not added: still ours */
	}

	if (poll && poll_us) {
		ktime_t end = ktime_add_us(ktime_get(), poll_us);

		while (!smp_load_acquire(&req->done) && ktime_before(ktime_get(), end)) {
			if (mutex_trylock(&q->lock)) {
				if (!q->dead)
					vc_drain(q);
				mutex_unlock(&q->lock);
			}
			cpu_relax();
		}
	}

	left = wait_event_killable_timeout(req->done_wq, smp_load_acquire(&req->done),
					   timeout ? timeout : MAX_SCHEDULE_TIMEOUT);
	if (left > 0)
		return req->err; /* done: the request is ours again */

	mutex_lock(&q->lock);
	if (req->done) {
		mutex_unlock(&q->lock);
		return req->err;
	}
	/* The device may still write the pages: the completion frees them. */
	req->abandoned = true;
	mutex_unlock(&q->lock);
	*gone = true;
	return left == 0 ? -ETIMEDOUT : -EINTR;
}

/* An Open or Close chain: header and status only. */
static int vc_control(struct vc_file *f, u16 op, u32 *session)
{
	struct scatterlist *sgs[2];
	struct vc_req *req = vc_req_alloc(f, VCOMPUTE_CONTROL_QUEUE, 0, 0);
	u32 status;
	bool gone;
	int err;

	if (!req)
		return -ENOMEM;
	vc_put_header(req, op, *session, 0, 0);
	sgs[0] = &req->hdr_sg;
	sgs[1] = &req->status_sg;
	err = vc_run(req, sgs, 1, 1, false, CONTROL_WAIT, &gone);
	if (gone) {
		/* An abandoned Open may still open a session on the device;
		 * it ends at device reset. */
		return err;
	}
	if (!err) {
		status = le32_to_cpup((__le32 *)req->status);
		*session = le32_to_cpup((__le32 *)(req->status + 4));
		if (status == VCOMPUTE_STATUS_TOO_MANY_SESSIONS)
			err = -EBUSY;
		else if (status != VCOMPUTE_STATUS_OK)
			err = -EIO;
	}
	vc_req_free(req);
	return err;
}

/* ------------------------------------------------------------------ */
/* Submit */

/* Pins one user buffer and builds its scatterlist, merging physically
 * contiguous pages. A zero-length buffer is one empty descriptor. */
static int vc_pin(struct vc_req *req, struct vc_pinned *b, u64 addr, u64 len,
		  bool write)
{
	unsigned long start = addr & PAGE_MASK;
	unsigned int offset = offset_in_page(addr);
	long n;
	int err;

	b->write = write;
	if (len == 0) {
		/* One table entry still needs one descriptor. */
		err = sg_alloc_table(&b->sgt, 1, GFP_KERNEL);
		if (!err)
			sg_set_buf(b->sgt.sgl, req->status, 0);
		return err;
	}
	if (addr + len < addr)
		return -EINVAL;
	b->npages = DIV_ROUND_UP(offset + len, PAGE_SIZE);
	b->pages = kvmalloc_array(b->npages, sizeof(*b->pages), GFP_KERNEL);
	if (!b->pages)
		return -ENOMEM;
	n = pin_user_pages_fast(start, b->npages, write ? FOLL_WRITE : 0, b->pages);
	if (n != b->npages) {
		if (n > 0)
			unpin_user_pages(b->pages, n);
		kvfree(b->pages);
		b->pages = NULL;
		return n < 0 ? n : -EFAULT;
	}
	return sg_alloc_table_from_pages_segment(&b->sgt, b->pages, b->npages, offset,
						 len, req->file->dev->max_segment,
						 GFP_KERNEL);
}

static int vc_check_bufs(const struct vcompute_buf *bufs, u32 n, u64 *total)
{
	u32 i;

	for (i = 0; i < n; i++) {
		if (bufs[i].len > VCOMPUTE_MAX_BULK_BYTES)
			return -EINVAL;
		*total += bufs[i].len;
	}
	return *total > VCOMPUTE_MAX_BULK_BYTES ? -EINVAL : 0;
}

static long vc_submit(struct vc_file *f, struct vcompute_submit __user *uarg)
{
	struct vcompute_submit a;
	struct vcompute_buf *bufs = NULL;
	struct scatterlist **sgs = NULL;
	struct vc_req *req = NULL;
	unsigned int nbufs, i, descs, nsgs = 0;
	__le16 *table;
	u64 total = 0;
	bool gone;
	long err;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.queue > VCOMPUTE_REQUEST_QUEUE || a.flags & ~VCOMPUTE_SUBMIT_POLL ||
	    a.reserved || a.req_len == 0 || a.req_len > VCOMPUTE_MAX_REQUEST_AREA_LEN ||
	    a.resp_len == 0 || a.resp_len > VCOMPUTE_MAX_RESPONSE_LEN ||
	    a.n_in > VCOMPUTE_MAX_BUFS || a.n_out > VCOMPUTE_MAX_BUFS ||
	    a.n_in + a.n_out > VCOMPUTE_MAX_BUFS)
		return -EINVAL;
	nbufs = a.n_in + a.n_out;
	if (nbufs) {
		bufs = kvmalloc_array(nbufs, sizeof(*bufs), GFP_KERNEL);
		if (!bufs)
			return -ENOMEM;
		if (copy_from_user(bufs, u64_to_user_ptr(a.in_bufs), a.n_in * sizeof(*bufs)) ||
		    copy_from_user(bufs + a.n_in, u64_to_user_ptr(a.out_bufs),
				   a.n_out * sizeof(*bufs))) {
			err = -EFAULT;
			goto out;
		}
		err = vc_check_bufs(bufs, nbufs, &total);
		if (err)
			goto out;
	}

	err = -ENOMEM;
	req = vc_req_alloc(f, a.queue, nbufs, nbufs + 2);
	if (!req)
		goto out;
	sgs = kmalloc_array(nbufs + 4, sizeof(*sgs), GFP_KERNEL);
	if (!sgs)
		goto out;

	/* Chain order: header, request, in-bulk, status, response, out-bulk;
	 * req->bufs holds request, in-bulk..., response, out-bulk... */
	err = vc_pin(req, &req->bufs[0], a.req_addr, a.req_len, false);
	for (i = 0; !err && i < a.n_in; i++)
		err = vc_pin(req, &req->bufs[1 + i], bufs[i].addr, bufs[i].len, false);
	if (!err)
		err = vc_pin(req, &req->bufs[1 + a.n_in], a.resp_addr, a.resp_len, true);
	for (i = 0; !err && i < a.n_out; i++)
		err = vc_pin(req, &req->bufs[2 + a.n_in + i], bufs[a.n_in + i].addr,
			     bufs[a.n_in + i].len, true);
	if (err)
		goto out;

	descs = 2;
	for (i = 0; i < req->nbufs; i++)
		descs += req->bufs[i].sgt.orig_nents;
	if (descs > VCOMPUTE_MAX_DESCRIPTORS_PER_CHAIN) {
		err = -E2BIG;
		goto out;
	}
	vc_put_header(req, VCOMPUTE_OP_SUBMIT, f->session, req->bufs[0].sgt.orig_nents,
		      req->bufs[1 + a.n_in].sgt.orig_nents);
	table = (__le16 *)(req->hdr + VCOMPUTE_DEVICE_HEADER_LEN);
	for (i = 0; i < a.n_in; i++)
		table[i] = cpu_to_le16(req->bufs[1 + i].sgt.orig_nents);
	for (i = 0; i < a.n_out; i++)
		table[a.n_in + i] = cpu_to_le16(req->bufs[2 + a.n_in + i].sgt.orig_nents);

	sgs[nsgs++] = &req->hdr_sg;
	for (i = 0; i < 1 + a.n_in; i++)
		sgs[nsgs++] = req->bufs[i].sgt.sgl;
	sgs[nsgs++] = &req->status_sg;
	for (i = 1 + a.n_in; i < req->nbufs; i++)
		sgs[nsgs++] = req->bufs[i].sgt.sgl;

	err = vc_run(req, sgs, 2 + a.n_in, 2 + a.n_out, a.flags & VCOMPUTE_SUBMIT_POLL,
		     msecs_to_jiffies(a.timeout_ms), &gone);
	if (gone) {
		req = NULL; /* the completion path frees it */
		goto out;
	}
	if (!err) {
		u32 status = le32_to_cpup((__le32 *)req->status);
		u32 rlen = le32_to_cpup((__le32 *)(req->status + 8));

		if (status == VCOMPUTE_STATUS_OK && rlen > a.resp_len) {
			err = -EIO;
		} else if (put_user(status, &uarg->status) ||
			   put_user(status == VCOMPUTE_STATUS_OK ? rlen : 0,
				    &uarg->response_len)) {
			err = -EFAULT;
		}
	}
out:
	if (req)
		vc_req_free(req);
	kfree(sgs);
	kvfree(bufs);
	return err;
}

/* ------------------------------------------------------------------ */
/* File operations */

static void vc_file_free(struct kref *ref)
{
	struct vc_file *f = container_of(ref, struct vc_file, ref);

	put_device(&f->dev->dev);
	kfree(f);
}

static int vc_open(struct inode *inode, struct file *file)
{
	/* The open cdev holds its parent, dev->dev, until we take our own. */
	struct vc_dev *dev = container_of(inode->i_cdev, struct vc_dev, cdev);
	struct vc_file *f = kzalloc(sizeof(*f), GFP_KERNEL);
	u32 session = 0;
	int err;

	if (!f)
		return -ENOMEM;
	kref_init(&f->ref);
	get_device(&dev->dev);
	f->dev = dev;
	init_waitqueue_head(&f->idle);
	err = vc_control(f, VCOMPUTE_OP_OPEN, &session);
	if (err) {
		kref_put(&f->ref, vc_file_free);
		return err;
	}
	f->session = session;
	file->private_data = f;
	return 0;
}

static int vc_release(struct inode *inode, struct file *file)
{
	struct vc_file *f = file->private_data;
	u32 session = f->session;

	/* Close first: the device ends the session's work, so the file's
	 * abandoned chains complete soon. */
	vc_control(f, VCOMPUTE_OP_CLOSE, &session);
	if (!wait_event_timeout(f->idle, atomic_read(&f->inflight) == 0, RELEASE_WAIT))
		/* The device may be gone already: no dev_* logging here. */
		pr_warn_once("vcompute: chains of a closed file are still in flight; their pages stay pinned until the device completes them or goes\n");
	kref_put(&f->ref, vc_file_free);
	return 0;
}

static long vc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vc_file *f = file->private_data;
	struct vcompute_info info;

	switch (cmd) {
	case VCOMPUTE_IOC_SUBMIT:
		return vc_submit(f, (struct vcompute_submit __user *)arg);
	case VCOMPUTE_IOC_INFO:
		info = f->dev->info;
		info.session = f->session;
		return copy_to_user((void __user *)arg, &info, sizeof(info)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations vc_fops = {
	.owner = THIS_MODULE,
	.open = vc_open,
	.release = vc_release,
	.unlocked_ioctl = vc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* ------------------------------------------------------------------ */
/* Device */

static void vc_dev_release(struct device *d)
{
	struct vc_dev *dev = container_of(d, struct vc_dev, dev);

	ida_free(&vc_ida, MINOR(d->devt));
	kfree(dev);
}

static int vc_probe(struct virtio_device *vdev)
{
	static const char * const names[] = { "control", "request" };
	vq_callback_t *cbs[] = { vc_vq_done, vc_vq_done };
	struct virtqueue *vqs[2];
	struct vc_dev *dev;
	int i, err, index;

	index = ida_alloc_max(&vc_ida, VC_MINORS - 1, GFP_KERNEL);
	if (index < 0)
		return index;
	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev) {
		ida_free(&vc_ida, index);
		return -ENOMEM;
	}
	/* From here on put_device frees dev and the index. */
	device_initialize(&dev->dev);
	dev->dev.devt = MKDEV(MAJOR(vc_devt), index);
	dev->dev.class = vc_class;
	dev->dev.parent = &vdev->dev;
	dev->dev.release = vc_dev_release;
	err = dev_set_name(&dev->dev, "vcompute%d", index);
	if (err)
		goto err_free;
	cdev_init(&dev->cdev, &vc_fops);
	dev->cdev.owner = THIS_MODULE;
	dev->vdev = vdev;
	vdev->priv = dev;
	/* Descriptors no longer than the DMA path maps (bounce buffers of a
	 * VIRTIO_F_ACCESS_PLATFORM guest), whole pages. */
	dev->max_segment = rounddown(min_t(size_t, virtio_max_dma_size(vdev), UINT_MAX),
				     PAGE_SIZE);
	if (dev->max_segment < PAGE_SIZE)
		dev->max_segment = PAGE_SIZE;

	if (virtio_has_feature(vdev, VCOMPUTE_F_CONFIG)) {
		virtio_cread_le(vdev, struct vcompute_config, num_request_queues,
				&dev->info.num_request_queues);
		virtio_cread_le(vdev, struct vcompute_config, max_sessions,
				&dev->info.max_sessions);
		virtio_cread_le(vdev, struct vcompute_config, api_families,
				&dev->info.api_families);
		virtio_cread_le(vdev, struct vcompute_config, protocol_version,
				&dev->info.protocol_version);
		dev->info.from_config = 1;
	} else {
		/* A carrier's config space is not ours: DeviceConfig::CARRIER. */
		dev->info.num_request_queues = 1;
		dev->info.api_families = VCOMPUTE_API_OPENCL | VCOMPUTE_API_CUDA;
		dev->info.protocol_version = VCOMPUTE_PROTOCOL_VERSION;
	}
	/* Chains of many pages need indirect descriptors (the ring holds 256). */
	if (!virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC)) {
		dev_err(&vdev->dev, "the device does not offer INDIRECT_DESC\n");
		err = -ENODEV;
		goto err_free;
	}
	if (dev->info.num_request_queues < 1) {
		dev_err(&vdev->dev, "the device has no request queue\n");
		err = -ENODEV;
		goto err_free;
	}

	err = virtio_find_vqs(vdev, 2, vqs, cbs, names, NULL);
	if (err)
		goto err_free;
	for (i = 0; i < 2; i++) {
		dev->q[i].vq = vqs[i];
		mutex_init(&dev->q[i].lock);
		INIT_WORK(&dev->q[i].reap, vc_reap);
		init_waitqueue_head(&dev->q[i].space);
	}
	virtio_device_ready(vdev);

	err = cdev_device_add(&dev->cdev, &dev->dev);
	if (err)
		goto err_reset;
	dev_info(&vdev->dev, "/dev/%s: device %u, %s config, protocol %u\n",
		 dev_name(&dev->dev), vdev->id.device,
		 dev->info.from_config ? "own" : "carrier", dev->info.protocol_version);
	return 0;

err_reset:
	virtio_reset_device(vdev);
	vdev->config->del_vqs(vdev);
err_free:
	put_device(&dev->dev);
	return err;
}

static void vc_remove(struct virtio_device *vdev)
{
	struct vc_dev *dev = vdev->priv;
	struct vc_req *req;
	int i;

	/* No new opens; one already past the lookup finds the queues dead. */
	cdev_device_del(&dev->cdev, &dev->dev);
	/* The device stops using the rings and every page they name. */
	virtio_reset_device(vdev);
	for (i = 0; i < 2; i++) {
		struct vc_queue *q = &dev->q[i];

		mutex_lock(&q->lock);
		vc_drain(q);
		while ((req = virtqueue_detach_unused_buf(q->vq)))
			vc_complete(req, -ENODEV);
		q->dead = true;
		wake_up_all(&q->space);
		mutex_unlock(&q->lock);
	}
	vdev->config->del_vqs(vdev);
	for (i = 0; i < 2; i++)
		cancel_work_sync(&dev->q[i].reap);
	/* Open files keep dev; their submits now fail with -ENODEV. */
	put_device(&dev->dev);
}

static unsigned int vc_features[] = { VCOMPUTE_F_CONFIG };

/* The second entry is the carrier, filled from carrier_id at load. */
static struct virtio_device_id vc_ids[] = {
	{ VCOMPUTE_DEVICE_ID, VIRTIO_DEV_ANY_ID },
	{ 0, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static const struct virtio_device_id vc_ids_static[] = {
	{ VCOMPUTE_DEVICE_ID, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vc_ids_static);

/* VERSION_1, EVENT_IDX and INDIRECT_DESC are transport features: the
 * virtio core and ring negotiate them whenever the device offers them. */
static struct virtio_driver vc_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.feature_table = vc_features,
	.feature_table_size = ARRAY_SIZE(vc_features),
	.id_table = vc_ids,
	.probe = vc_probe,
	.remove = vc_remove,
};

static int vc_set_carrier(void)
{
	if (carrier_id == VCOMPUTE_DEVICE_ID || carrier_id > 63)
		return -EINVAL;
	vc_ids[1].device = carrier_id; /* 0 ends the table here */
	return 0;
}

/* The node's permissions: the mode parameter. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *vc_devnode(const struct device *d, umode_t *m)
#else
static char *vc_devnode(struct device *d, umode_t *m)
#endif
{
	if (m)
		*m = mode & 0777;
	return NULL;
}

static int __init vc_init(void)
{
	int err = vc_set_carrier();

	if (err) {
		pr_err("vcompute: carrier_id %u is not a usable virtio device ID\n",
		       carrier_id);
		return err;
	}
	err = alloc_chrdev_region(&vc_devt, 0, VC_MINORS, "vcompute");
	if (err)
		return err;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vc_class = class_create("vcompute");
#else
	vc_class = class_create(THIS_MODULE, "vcompute");
#endif
	if (IS_ERR(vc_class)) {
		err = PTR_ERR(vc_class);
		goto err_region;
	}
	vc_class->devnode = vc_devnode;
	err = register_virtio_driver(&vc_driver);
	if (err)
		goto err_class;
	return 0;

err_class:
	class_destroy(vc_class);
err_region:
	unregister_chrdev_region(vc_devt, VC_MINORS);
	return err;
}

static void __exit vc_exit(void)
{
	unregister_virtio_driver(&vc_driver);
	class_destroy(vc_class);
	unregister_chrdev_region(vc_devt, VC_MINORS);
}

module_init(vc_init);
module_exit(vc_exit);

MODULE_DESCRIPTION("virtio-compute: paravirtual GPU compute device");
/* virtqueue_add_sgs and pin_user_pages_fast are GPL-only exports. */
MODULE_LICENSE("Dual BSD/GPL");
