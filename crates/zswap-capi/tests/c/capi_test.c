/*
 * A C kernel's use of zswap through include/zswap.h, as a test program.
 *
 * The "kernel" here is this process: pages come from the C heap
 * (posix_memalign), the swap device is an array of malloc'd pages, cgroup
 * charges are counters. It stores a few hundred pages of varied content
 * (zero and same-value, text-like, random, half random), writes some back,
 * loads everything (from zswap, the swap core's zeromap for zero pages, or
 * from the device when zswap says -ENOENT),
 * checks every byte and the stats, and walks the bad-argument paths.
 *
 * Exit status 0 on success; otherwise the failed check is printed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zswap.h"

#define NR_PAGES 400
#define SWAP_SLOTS 1024

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			failures++;                                            \
			if (failures > 20)                                     \
				exit(1);                                       \
		}                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		if (_a != _b) {                                                \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
				__FILE__, __LINE__, #a, _a, #b, _b);           \
			failures++;                                            \
			if (failures > 20)                                     \
				exit(1);                                       \
		}                                                              \
	} while (0)

/* ------------------------------------------------------------------ */
/* The platform                                                       */
/* ------------------------------------------------------------------ */

struct kernel {
	long pages_allocated;
	long pages_peak;
	unsigned long device_writes;
	unsigned long slots_freed;
	unsigned long shrink_work_queued;
	unsigned long charges;
	unsigned long uncharges;
	unsigned long nid_calls;
	int fail_writes;
	/* Reclaim from inside the swap-in charge, this many times. */
	int reclaim_in_charge;
	unsigned long reclaims_in_charge;
	struct zswap *z;
	/* The swap device: one malloc'd page per slot of type 0, or NULL. */
	uint8_t *device[SWAP_SLOTS];
};

static void *k_alloc_page(void *ctx, uint32_t gfp)
{
	struct kernel *k = ctx;
	void *p = NULL;

	if (posix_memalign(&p, ZSWAP_PAGE_SIZE, ZSWAP_PAGE_SIZE) != 0)
		return NULL;
	if (gfp & ZSWAP_GFP_ZERO)
		memset(p, 0, ZSWAP_PAGE_SIZE);
	{
		long now = __atomic_add_fetch(&k->pages_allocated, 1, __ATOMIC_RELAXED);
		long peak = __atomic_load_n(&k->pages_peak, __ATOMIC_RELAXED);

		while (now > peak &&
		       !__atomic_compare_exchange_n(&k->pages_peak, &peak, now, 0,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	return p;
}

static void k_free_page(void *ctx, void *page)
{
	struct kernel *k = ctx;

	__atomic_sub_fetch(&k->pages_allocated, 1, __ATOMIC_RELAXED);
	free(page);
}

static uint32_t k_current_cpu(void *ctx)
{
	(void)ctx;
	return 0;
}

static uint32_t k_nr_cpus(void *ctx)
{
	(void)ctx;
	return 2;
}

static uint64_t k_totalram_pages(void *ctx)
{
	(void)ctx;
	return 1u << 18; /* 1 GiB */
}

static int k_swap_write(void *ctx, uint32_t type, uint64_t offset, const void *page)
{
	struct kernel *k = ctx;

	if (type != 0 || offset >= SWAP_SLOTS)
		return -EINVAL;
	if (k->fail_writes)
		return -EIO;
	if (!k->device[offset]) {
		k->device[offset] = malloc(ZSWAP_PAGE_SIZE);
		if (!k->device[offset])
			return -ENOMEM;
	}
	memcpy(k->device[offset], page, ZSWAP_PAGE_SIZE);
	__atomic_add_fetch(&k->device_writes, 1, __ATOMIC_RELAXED);
	return 0;
}

static int k_swap_read(void *ctx, uint32_t type, uint64_t offset, void *page)
{
	struct kernel *k = ctx;

	if (type != 0 || offset >= SWAP_SLOTS || !k->device[offset])
		return -EIO;
	memcpy(page, k->device[offset], ZSWAP_PAGE_SIZE);
	return 0;
}

static void k_slot_freed(void *ctx, uint32_t type, uint64_t offset)
{
	struct kernel *k = ctx;

	__atomic_add_fetch(&k->slots_freed, 1, __ATOMIC_RELAXED);
	if (type == 0 && offset < SWAP_SLOTS) {
		free(k->device[offset]);
		k->device[offset] = NULL;
	}
}

static void k_queue_shrink_work(void *ctx)
{
	struct kernel *k = ctx;

	__atomic_add_fetch(&k->shrink_work_queued, 1, __ATOMIC_RELAXED);
}

static int k_charge_swapin(void *ctx, uint32_t memcg_id, uint32_t type, uint64_t offset,
			   uint32_t gfp)
{
	struct kernel *k = ctx;

	(void)type;
	(void)offset;
	__atomic_add_fetch(&k->charges, 1, __ATOMIC_RELAXED);
	/* A charge over the cgroup's limit reclaims, and reclaim re-enters
	 * zswap: the fault-plus-reclaim recursion. Writeback skips the slot
	 * being faulted in (it is busy), so this cannot wait on itself. */
	if (k->reclaim_in_charge > 0 && (gfp & ZSWAP_GFP_DIRECT_RECLAIM) && memcg_id != 0) {
		int rc;

		k->reclaim_in_charge--;
		rc = zswap_shrink_memcg(k->z, memcg_id);
		if (rc != 0 && rc != -ZSWAP_ENOENT && rc != -ZSWAP_EAGAIN)
			return rc;
		k->reclaims_in_charge++;
	}
	return 0;
}

static void k_writeback_done(void *ctx, uint32_t memcg_id)
{
	struct kernel *k = ctx;

	(void)memcg_id;
	__atomic_add_fetch(&k->uncharges, 1, __ATOMIC_RELAXED);
}

static uint32_t k_nr_nodes(void *ctx)
{
	(void)ctx;
	return 2;
}

/* Two nodes: pages alternate by frame number. */
static uint32_t k_page_to_nid(void *ctx, const void *page)
{
	struct kernel *k = ctx;

	__atomic_add_fetch(&k->nid_calls, 1, __ATOMIC_RELAXED);
	return (uint32_t)(((uintptr_t)page / ZSWAP_PAGE_SIZE) & 1);
}

/* The runtime the staticlib needs (built with the c-runtime feature). */
void *zswap_rust_alloc(size_t size, size_t align)
{
	void *p = NULL;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	return p;
}

void zswap_rust_free(void *ptr, size_t size, size_t align)
{
	(void)size;
	(void)align;
	free(ptr);
}

void zswap_rust_panic(const char *file, size_t file_len, uint32_t line)
{
	fprintf(stderr, "zswap: Rust panic at %.*s:%u\n", (int)file_len, file, line);
	abort();
}

/* ------------------------------------------------------------------ */
/* Page contents                                                      */
/* ------------------------------------------------------------------ */

enum kind { SAME_FILLED, TEXT, RANDOM, HALF_RANDOM, NR_KINDS };

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Is page i's content all zeros (see fill_page)? */
static int is_zero_kind(unsigned i)
{
	return i % NR_KINDS == SAME_FILLED && (i / NR_KINDS) % 2 == 0;
}

static void fill_page(uint8_t *p, unsigned i)
{
	static const char words[] = "swap zswap folio page cgroup reclaim writeback lz4 ";
	uint64_t s = 0x9e3779b97f4a7c15ull * (i + 1);
	size_t n;

	switch (i % NR_KINDS) {
	case SAME_FILLED:
		/* Every other one zero-filled: those go to the zeromap. */
		memset(p, (i / NR_KINDS) % 2 ? (int)(i | 1) & 0xff : 0, ZSWAP_PAGE_SIZE);
		break;
	case TEXT:
		for (n = 0; n < ZSWAP_PAGE_SIZE; n++)
			p[n] = (uint8_t)words[(n + i) % (sizeof(words) - 1)];
		p[i % ZSWAP_PAGE_SIZE] = (uint8_t)i;
		break;
	case RANDOM:
		for (n = 0; n < ZSWAP_PAGE_SIZE; n += 8) {
			uint64_t v = xorshift(&s);
			memcpy(p + n, &v, 8);
		}
		break;
	default:
		memset(p, 0, ZSWAP_PAGE_SIZE);
		for (n = 0; n < ZSWAP_PAGE_SIZE / 2; n += 8) {
			uint64_t v = xorshift(&s);
			memcpy(p + n, &v, 8);
		}
		break;
	}
}

/* ------------------------------------------------------------------ */
/* The test                                                           */
/* ------------------------------------------------------------------ */

static struct zswap_platform platform_of(struct kernel *k)
{
	struct zswap_platform p;

	memset(&p, 0, sizeof(p));
	p.ctx = k;
	p.alloc_page = k_alloc_page;
	p.free_page = k_free_page;
	p.current_cpu = k_current_cpu;
	p.nr_cpus = k_nr_cpus;
	p.totalram_pages = k_totalram_pages;
	p.swap_write = k_swap_write;
	p.swap_read = k_swap_read;
	p.slot_freed = k_slot_freed;
	p.queue_shrink_work = k_queue_shrink_work;
	p.charge_swapin = k_charge_swapin;
	p.writeback_done = k_writeback_done;
	p.nr_nodes = k_nr_nodes;
	p.page_to_nid = k_page_to_nid;
	return p;
}

struct slot {
	uint32_t type;
	uint64_t offset;
	int in_zswap; /* store returned 0 */
	int written_back;
};

static void bad_arguments(struct zswap *z, uint32_t type, uint64_t offset)
{
	uint8_t page[ZSWAP_PAGE_SIZE];
	char buf[16];
	uint64_t v;
	uint32_t t;
	struct zswap_stats st;
	struct zswap_shrink_control sc;
	struct zswap *bogus = (struct zswap *)page;

	memset(page, 0x5a, sizeof(page));
	memset(&sc, 0, sizeof(sc));
	/* NULL pointers */
	CHECK_EQ(zswap_store(z, type, offset, NULL, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_load(z, type, offset, NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_swapon(z, 16, NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_swap_alloc(z, NULL, &v), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_get_stats(z, NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, NULL, "1"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, "enabled", NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_shrinker_count(z, NULL, &v), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_shrinker_scan(z, &sc, NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_memcg_create(z, NULL, &t), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_get_stat(z, "stored_pages", NULL), -ZSWAP_EINVAL);
	/* Bad handles: NULL, a pointer zswap_create never returned. */
	CHECK_EQ(zswap_store(NULL, type, offset, page, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_load(bogus, type, offset, page), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_get_stats(bogus, &st), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_destroy(bogus), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_shrink_worker(NULL), -ZSWAP_EINVAL);
	/* Bad slots: unknown type, offsets past the device or the format. */
	CHECK_EQ(zswap_store(z, 31, 0, page, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_store(z, 99, 0, page, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_load(z, type, UINT64_MAX, page), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_invalidate(z, 99, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_swap_free(z, 99, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_is_present(z, 77, 0), -ZSWAP_EINVAL);
	/* A slot past the end of the device, and a free slot. */
	CHECK_EQ(zswap_store(z, type, SWAP_SLOTS + 5, page, 0), -ZSWAP_ENOENT);
	CHECK_EQ(zswap_load(z, type, SWAP_SLOTS - 1, page), -ZSWAP_ENOENT);
	/* Unknown cgroup, unknown gfp bits, unknown names, bad values. */
	CHECK_EQ(zswap_store(z, type, offset, page, 4000), -ZSWAP_EINVAL);
	sc.memcg_id = 4000;
	CHECK_EQ(zswap_shrinker_count(z, &sc, &v), -ZSWAP_EINVAL);
	sc.memcg_id = 0;
	sc.gfp = 1u << 30;
	CHECK_EQ(zswap_shrinker_count(z, &sc, &v), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, "no_such_param", "1"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, "max_pool_percent", "-1"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, "max_pool_percent", "25%"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_set(z, "enabled", "maybe"), -ZSWAP_EINVAL);
	/* Linux: a compressor that is not available is -ENOENT. */
	CHECK_EQ(zswap_param_set(z, "compressor", "no-such-algo"), -ZSWAP_ENOENT);
	CHECK_EQ(zswap_param_set(z, "enabled", "\xff\xfe"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_get(z, "no_such_param", buf, sizeof(buf)), -ZSWAP_EINVAL);
	/* Bad lengths: a buffer too short for the value and its NUL. */
	CHECK_EQ(zswap_param_get(z, "compressor", buf, 3), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_param_get(z, "compressor", buf, 0), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_get_stat(z, "no_such_counter", &v), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_memcg_read(z, 1, "memory.nonsense", &v), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_memcg_write(z, 1, "memory.zswap.max", "1M"), -ZSWAP_EINVAL); /* root */
	CHECK_EQ(zswap_memcg_write(z, 999, "memory.zswap.max", "1M"), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_swapon(z, 0, &t), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_swapoff(z, 17), -ZSWAP_EINVAL);
}

/* ------------------------------------------------------------------ */
/* Threads: one instance used from several at once                    */
/* ------------------------------------------------------------------ */

#define NR_THREADS 4
#define THREAD_PAGES 64

struct worker {
	struct zswap *z;
	struct kernel *k;
	unsigned id;
	int errors;
};

static volatile int workers_done;

/* Swaps out THREAD_PAGES pages of its own, then faults them back in. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct slot slots[THREAD_PAGES];
	uint8_t page[ZSWAP_PAGE_SIZE], want[ZSWAP_PAGE_SIZE];
	unsigned i, seed;

	for (i = 0; i < THREAD_PAGES; i++) {
		seed = 1000 + w->id * THREAD_PAGES + i;
		if (zswap_swap_alloc(w->z, &slots[i].type, &slots[i].offset) != 0) {
			w->errors++;
			return NULL;
		}
		fill_page(page, seed);
		if (zswap_store(w->z, slots[i].type, slots[i].offset, page, 0) != 0 &&
		    k_swap_write(w->k, slots[i].type, slots[i].offset, page) != 0)
			w->errors++;
	}
	for (i = 0; i < THREAD_PAGES; i++) {
		int rc;

		seed = 1000 + w->id * THREAD_PAGES + i;
		fill_page(want, seed);
		rc = zswap_load(w->z, slots[i].type, slots[i].offset, page);
		if (rc == -ZSWAP_ENOENT)
			rc = k_swap_read(w->k, slots[i].type, slots[i].offset, page);
		if (rc != 0 || memcmp(page, want, ZSWAP_PAGE_SIZE) != 0)
			w->errors++;
		if (zswap_swap_free(w->z, slots[i].type, slots[i].offset) != 0)
			w->errors++;
	}
	return NULL;
}

/* Writes back from the root lists while the workers run. */
static void *shrinker_main(void *arg)
{
	struct worker *w = arg;
	struct zswap_shrink_control sc;
	uint64_t freed;
	unsigned n = 0;

	while (!__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) || n < 4) {
		memset(&sc, 0, sizeof(sc));
		sc.gfp = ZSWAP_GFP_KERNEL;
		sc.nid = n % 2;
		sc.nr_to_scan = 16;
		if (zswap_shrinker_scan(w->z, &sc, &freed) != 0)
			w->errors++;
		n++;
	}
	return NULL;
}

static void threads(struct zswap *z, struct kernel *k)
{
	pthread_t tid[NR_THREADS + 1];
	struct worker w[NR_THREADS + 1];
	struct zswap_stats st, before;
	unsigned i;

	for (i = 0; i <= NR_THREADS; i++) {
		w[i].z = z;
		w[i].k = k;
		w[i].id = i;
		w[i].errors = 0;
	}
	CHECK_EQ(zswap_get_stats(z, &before), 0);
	workers_done = 0;
	CHECK_EQ(pthread_create(&tid[NR_THREADS], NULL, shrinker_main, &w[NR_THREADS]), 0);
	for (i = 0; i < NR_THREADS; i++)
		CHECK_EQ(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
	for (i = 0; i < NR_THREADS; i++)
		CHECK_EQ(pthread_join(tid[i], NULL), 0);
	__atomic_store_n(&workers_done, 1, __ATOMIC_RELEASE);
	CHECK_EQ(pthread_join(tid[NR_THREADS], NULL), 0);
	for (i = 0; i <= NR_THREADS; i++)
		CHECK_EQ(w[i].errors, 0);
	/* Every page of the workers came back and every slot was freed. */
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	CHECK_EQ(st.stored_pages, 0);
	CHECK_EQ(st.decompress_fail, 0);
	fprintf(stderr, "threads: %u pages, %llu written back by the shrinker thread\n",
		NR_THREADS * THREAD_PAGES,
		(unsigned long long)(st.written_back_pages - before.written_back_pages));
}

/* ------------------------------------------------------------------ */
/* swapoff: try_to_unuse                                              */
/* ------------------------------------------------------------------ */

#define UNUSE_PAGES 24

struct unuse_state {
	struct zswap *z;
	struct kernel *k;
	uint64_t offsets[UNUSE_PAGES];
	unsigned seen;
	int errors;
};

/* The kernel's side of try_to_unuse: fault the slot's page back in (zswap,
 * the zeromap, else the device), check it, drop the page table's reference. */
static int unuse_one(void *arg, uint32_t type, uint64_t offset)
{
	struct unuse_state *u = arg;
	uint8_t page[ZSWAP_PAGE_SIZE], want[ZSWAP_PAGE_SIZE];
	unsigned i;
	int rc;

	for (i = 0; i < UNUSE_PAGES && u->offsets[i] != offset; i++)
		;
	if (i == UNUSE_PAGES) {
		u->errors++;
		return -ZSWAP_EINVAL;
	}
	rc = zswap_load(u->z, type, offset, page);
	if (rc == -ZSWAP_ENOENT)
		rc = k_swap_read(u->k, type, offset, page);
	fill_page(want, 2000 + i);
	if (rc != 0 || memcmp(page, want, ZSWAP_PAGE_SIZE) != 0)
		u->errors++;
	u->seen++;
	return zswap_swap_free(u->z, type, offset);
}

static void unuse_pages(struct zswap *z, struct kernel *k, uint32_t type)
{
	static struct unuse_state u;
	uint8_t page[ZSWAP_PAGE_SIZE];
	struct zswap_stats st;
	uint32_t t;
	unsigned i;

	memset(&u, 0, sizeof(u));
	u.z = z;
	u.k = k;
	for (i = 0; i < UNUSE_PAGES; i++) {
		CHECK_EQ(zswap_swap_alloc(z, &t, &u.offsets[i]), 0);
		CHECK_EQ(t, type);
		fill_page(page, 2000 + i);
		CHECK_EQ(zswap_store(z, t, u.offsets[i], page, 0), 0);
	}
	CHECK_EQ(zswap_writeback(z, type, u.offsets[1]), 0); /* one on the device */
	CHECK_EQ(zswap_swapoff(z, type), -ZSWAP_EBUSY);
	CHECK_EQ(zswap_try_to_unuse(z, type, NULL, &u), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_try_to_unuse(z, 29, unuse_one, &u), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_try_to_unuse(z, type, unuse_one, &u), 0);
	CHECK_EQ(u.seen, UNUSE_PAGES);
	CHECK_EQ(u.errors, 0);
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	CHECK_EQ(st.stored_pages, 0);
}

int main(void)
{
	static struct kernel k;
	struct zswap_platform plat = platform_of(&k);
	struct zswap_platform incomplete;
	struct zswap *z = NULL;
	struct zswap *dangling;
	struct zswap_stats st;
	struct zswap_shrink_control sc;
	static struct slot slots[NR_PAGES];
	static uint8_t page[ZSWAP_PAGE_SIZE], want[ZSWAP_PAGE_SIZE];
	char buf[32];
	uint32_t type, memcg_a, memcg_b;
	uint64_t v, freed, count;
	unsigned i, stored = 0, zeros = 0, raw = 0, from_zswap = 0, from_device = 0;
	unsigned from_zero = 0;
	unsigned written_back = 0;
	int rc;

	/* create: NULL arguments, a missing required hook, unknown flags. */
	CHECK_EQ(zswap_create(NULL, 0, &z), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_create(&plat, 0, NULL), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_create(&plat, 0x80, &z), -ZSWAP_EINVAL);
	incomplete = plat;
	incomplete.swap_write = NULL;
	CHECK_EQ(zswap_create(&incomplete, 0, &z), -ZSWAP_EINVAL);
	CHECK(z == NULL);

	rc = zswap_create(&plat, ZSWAP_CREATE_MEMCG, &z);
	CHECK_EQ(rc, 0);
	if (rc != 0)
		return 1;
	CHECK_EQ(zswap_swapon(z, SWAP_SLOTS, &type), 0);
	CHECK_EQ(type, 0);
	CHECK_EQ(zswap_memcg_create(z, "a", &memcg_a), 0);
	CHECK_EQ(zswap_memcg_create(z, "b", &memcg_b), 0);
	CHECK_EQ(zswap_memcg_create(z, "a", &memcg_b), -ZSWAP_EEXIST);
	CHECK_EQ(zswap_memcg_create(z, "b", &memcg_b), -ZSWAP_EEXIST);
	CHECK(memcg_a != memcg_b);

	/* Parameters by Linux name, read back as sysfs shows them. */
	CHECK_EQ(zswap_param_get(z, "compressor", buf, sizeof(buf)), 3);
	CHECK(strcmp(buf, "lz4") == 0);
	CHECK_EQ(zswap_param_get(z, "shrinker_enabled", buf, sizeof(buf)), 1);
	CHECK(strcmp(buf, "N") == 0);
	CHECK_EQ(zswap_param_set(z, "shrinker_enabled", "Y"), 0);
	CHECK_EQ(zswap_param_get(z, "shrinker_enabled", buf, sizeof(buf)), 1);
	CHECK(strcmp(buf, "Y") == 0);
	CHECK_EQ(zswap_param_set(z, "max_pool_percent", "25"), 0);
	CHECK_EQ(zswap_param_get(z, "max_pool_percent", buf, sizeof(buf)), 2);
	CHECK(strcmp(buf, "25") == 0);

	/* Swap-out: a slot, then store; on an error the kernel writes the
	 * device itself. Pages alternate between cgroups a and b. */
	for (i = 0; i < NR_PAGES; i++) {
		struct slot *s = &slots[i];
		uint32_t memcg = (i % 2) ? memcg_b : memcg_a;

		CHECK_EQ(zswap_swap_alloc(z, &s->type, &s->offset), 0);
		fill_page(page, i);
		rc = zswap_store(z, s->type, s->offset, page, memcg);
		if (rc == 0) {
			s->in_zswap = 1;
			stored++;
			if (is_zero_kind(i))
				zeros++;
			if (i % NR_KINDS == RANDOM)
				raw++;
		} else {
			fprintf(stderr, "store %u: %d\n", i, rc);
			CHECK_EQ(k_swap_write(&k, s->type, s->offset, page), 0);
		}
	}
	CHECK_EQ(stored, NR_PAGES);
	CHECK_EQ(zeros, NR_PAGES / NR_KINDS / 2);
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	/* Zero pages are the swap core's (zeromap), not zswap entries. */
	CHECK_EQ(st.stored_pages, stored - zeros);
	CHECK_EQ(st.zswpout, stored - zeros);
	CHECK_EQ(zswap_get_stat(z, "swpout_zero", &v), 0);
	CHECK_EQ(v, zeros);
	CHECK_EQ(zswap_memcg_read(z, memcg_a, "swpout_zero", &v), 0);
	CHECK_EQ(v, zeros); /* even pages are a's; zero pages are even */
	CHECK_EQ(st.stored_incompressible_pages, raw);
	CHECK(st.pool_total_size > 0);
	/* The pool is smaller than the pages it holds. */
	CHECK(st.pool_total_size < (uint64_t)(stored - zeros) * ZSWAP_PAGE_SIZE);
	CHECK_EQ(zswap_get_stat(z, "stored_pages", &v), 0);
	CHECK_EQ(v, stored - zeros);
	CHECK_EQ(zswap_memcg_read(z, memcg_a, "zswpout", &v), 0);
	CHECK_EQ(v, NR_PAGES / 2 - zeros);
	CHECK_EQ(zswap_is_present(z, slots[0].type, slots[0].offset), 0); /* zero page */
	CHECK_EQ(zswap_memcg_read(z, memcg_a, "memory.zswap.current", &v), 0);
	CHECK(v > 0);
	CHECK_EQ(zswap_is_present(z, slots[1].type, slots[1].offset), 1);

	bad_arguments(z, type, slots[1].offset);

	/* Writeback, one slot at a time: the first 40 compressed slots. */
	for (i = 0; i < NR_PAGES && written_back < 40; i++) {
		/* Same-value pages are compressed like any page (Linux 6.12+
		 * has no same-filled entries): written back too. Zero pages
		 * are not zswap's. */
		if (is_zero_kind(i)) {
			CHECK_EQ(zswap_writeback(z, slots[i].type, slots[i].offset),
				 -ZSWAP_ENOENT);
			continue;
		}
		CHECK_EQ(zswap_writeback(z, slots[i].type, slots[i].offset), 0);
		CHECK_EQ(zswap_is_present(z, slots[i].type, slots[i].offset), 0);
		CHECK(k.device[slots[i].offset] != NULL);
		slots[i].written_back = 1;
		written_back++;
	}
	/* Writeback of a slot zswap no longer holds. */
	CHECK_EQ(zswap_writeback(z, slots[1].type, slots[1].offset), -ZSWAP_ENOENT);

	/* The shrinker, for cgroup b: count, then scan. */
	memset(&sc, 0, sizeof(sc));
	sc.gfp = ZSWAP_GFP_KERNEL;
	sc.memcg_id = memcg_b;
	{
		uint64_t total = 0;

		for (sc.nid = 0; sc.nid < 2; sc.nid++) {
			CHECK_EQ(zswap_shrinker_count(z, &sc, &count), 0);
			total += count;
		}
		CHECK(total > 0);
	}
	/* Entries start referenced: the first passes only rotate them
	 * (second chance), so scan until one pass writes something back. The
	 * entries are spread over both nodes (page_to_nid). */
	CHECK(k.nid_calls >= stored - zeros);
	sc.nr_to_scan = 64;
	freed = ZSWAP_SHRINK_STOP;
	for (i = 0; i < 16 && freed == ZSWAP_SHRINK_STOP; i++) {
		sc.nid = i % 2;
		CHECK_EQ(zswap_shrinker_scan(z, &sc, &freed), 0);
	}
	CHECK(freed != ZSWAP_SHRINK_STOP);
	CHECK(freed > 0 && freed <= 64);
	CHECK(sc.nr_scanned >= freed);
	/* Without IO|FS the shrinker offers nothing. */
	sc.gfp = ZSWAP_GFP_DIRECT_RECLAIM;
	CHECK_EQ(zswap_shrinker_count(z, &sc, &count), 0);
	CHECK_EQ(count, 0);

	CHECK_EQ(zswap_get_stats(z, &st), 0);
	CHECK_EQ(st.written_back_pages, written_back + freed);
	CHECK_EQ(st.zswpwb, written_back + freed);
	CHECK_EQ(st.stored_pages, stored - zeros - written_back - freed);
	CHECK_EQ(k.device_writes, written_back + freed);
	/* Every page writeback charged was handed back for uncharging. */
	CHECK_EQ(k.charges, written_back + freed);
	CHECK_EQ(k.uncharges, k.charges);
	CHECK_EQ(zswap_memcg_read(z, memcg_b, "zswpwb", &v), 0);
	CHECK(v >= freed);

	/* Writeback left holes in the pool: the compaction shrinker and
	 * zs_compact give pages back (counted in pages_compacted); the loads
	 * below check that every moved object still reads back right. */
	{
		uint64_t can = 0, got = 0, all = 0;
		struct zswap_stats before, after;

		CHECK_EQ(zswap_get_stats(z, &before), 0);
		memset(&sc, 0, sizeof(sc));
		sc.gfp = ZSWAP_GFP_DIRECT_RECLAIM; /* no IO|FS: compaction still runs */
		CHECK_EQ(zswap_pool_shrinker_count(z, &sc, &can), 0);
		sc.nr_to_scan = 4;
		CHECK_EQ(zswap_pool_shrinker_scan(z, &sc, &got), 0);
		if (got == ZSWAP_SHRINK_STOP)
			got = 0;
		CHECK(got <= can);
		CHECK_EQ(zswap_compact(z, &all), 0);
		CHECK_EQ(zswap_compact(z, NULL), -ZSWAP_EINVAL);
		CHECK_EQ(zswap_get_stats(z, &after), 0);
		CHECK_EQ(after.pages_compacted - before.pages_compacted, got + all);
		CHECK_EQ(before.pool_total_size - after.pool_total_size,
			 (got + all) * ZSWAP_PAGE_SIZE);
		CHECK_EQ(after.stored_pages, before.stored_pages);
		fprintf(stderr, "compaction: %llu pages could go, %llu given back\n",
			(unsigned long long)can, (unsigned long long)(got + all));
	}

	/* The global worker runs on request (from a work item). */
	CHECK_EQ(zswap_shrink_worker(z), 0);

	/* A failed device write: the page stays readable through zswap. */
	for (i = 0; i < NR_PAGES; i++)
		if (i % NR_KINDS == TEXT && zswap_is_present(z, slots[i].type, slots[i].offset) == 1)
			break;
	CHECK(i < NR_PAGES);
	if (i < NR_PAGES) {
		k.fail_writes = 1;
		CHECK_EQ(zswap_writeback(z, slots[i].type, slots[i].offset), -ZSWAP_EIO);
		k.fail_writes = 0;
		fill_page(want, i);
		memset(page, 0, sizeof(page));
		CHECK_EQ(zswap_load(z, slots[i].type, slots[i].offset, page), 0);
		CHECK(memcmp(page, want, ZSWAP_PAGE_SIZE) == 0);
		/* Stored again, so the loop below finds it in zswap. */
		CHECK_EQ(zswap_store(z, slots[i].type, slots[i].offset, want, memcg_a), 0);
	}

	/* Faults: every page comes back byte for byte. The first faults'
	 * charges reclaim (re-entering zswap from inside zswap_load). */
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	k.z = z;
	k.reclaim_in_charge = 8;
	for (i = 0; i < NR_PAGES; i++) {
		struct slot *s = &slots[i];

		int present = zswap_is_present(z, s->type, s->offset);

		fill_page(want, i);
		memset(page, 0xee, sizeof(page));
		rc = zswap_load(z, s->type, s->offset, page);
		if (rc == -ZSWAP_ENOENT) {
			CHECK_EQ(k_swap_read(&k, s->type, s->offset, page), 0);
			from_device++;
		} else {
			CHECK_EQ(rc, 0);
			if (present)
				from_zswap++;
			else
				from_zero++;
		}
		if (memcmp(page, want, ZSWAP_PAGE_SIZE) != 0) {
			fprintf(stderr, "page %u differs (rc %d)\n", i, rc);
			failures++;
		}
		/* Exclusive load: zswap no longer holds it. */
		CHECK_EQ(zswap_is_present(z, s->type, s->offset), 0);
	}
	CHECK_EQ(k.reclaims_in_charge, 8);
	CHECK_EQ(from_zero, zeros);
	CHECK_EQ(zswap_get_stat(z, "swpin_zero", &v), 0);
	CHECK_EQ(v, zeros);
	CHECK_EQ(from_zswap + from_zero + from_device, NR_PAGES);
	{
		struct zswap_stats after;

		CHECK_EQ(zswap_get_stats(z, &after), 0);
		/* Reclaim inside the charges wrote more back; every page
		 * written back came from the device. */
		CHECK(after.written_back_pages > written_back + freed);
		CHECK_EQ(from_device, after.written_back_pages);
		CHECK_EQ(after.zswpin - st.zswpin, from_zswap);
		CHECK_EQ(after.stored_pages, 0);
		CHECK_EQ(after.decompress_fail, 0);
	}

	threads(z, &k);

	/* swapoff is refused while slots are in use. */
	CHECK_EQ(zswap_swapoff(z, type), -ZSWAP_EBUSY);
	/* Unmap: the last reference frees the slot (slot_freed each). */
	for (i = 0; i < NR_PAGES; i++)
		CHECK_EQ(zswap_swap_free(z, slots[i].type, slots[i].offset), 0);
	CHECK_EQ(k.slots_freed, NR_PAGES + NR_THREADS * THREAD_PAGES);
	CHECK_EQ(zswap_swap_free(z, slots[0].type, slots[0].offset), -ZSWAP_ENOENT);

	/* A store and a free of the slot drops the entry (invalidate). */
	CHECK_EQ(zswap_swap_alloc(z, &type, &v), 0);
	fill_page(page, 1);
	CHECK_EQ(zswap_store(z, type, v, page, 0), 0);
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	CHECK_EQ(st.stored_pages, 1);
	CHECK_EQ(zswap_swap_free(z, type, v), 0);
	CHECK_EQ(zswap_get_stats(z, &st), 0);
	CHECK_EQ(st.stored_pages, 0);

	CHECK_EQ(zswap_memcg_remove(z, "b"), 0);
	CHECK_EQ(zswap_memcg_remove(z, "b"), -ZSWAP_ENOENT);

	/* A shared page: two references to one slot. The first fault's load is
	 * exclusive in zswap, yet the second still gets the page (the swap
	 * cache keeps it while references remain); a store supersedes it. */
	{
		uint32_t t;
		uint64_t off;
		struct zswap_stats s0, s1;

		CHECK_EQ(zswap_swap_alloc(z, &t, &off), 0);
		CHECK_EQ(zswap_swap_duplicate(z, t, off), 0);
		fill_page(want, 3);
		CHECK_EQ(zswap_store(z, t, off, want, memcg_a), 0);
		CHECK_EQ(zswap_get_stats(z, &s0), 0);
		memset(page, 0, sizeof(page));
		CHECK_EQ(zswap_load(z, t, off, page), 0);
		CHECK(memcmp(page, want, ZSWAP_PAGE_SIZE) == 0);
		CHECK_EQ(zswap_is_present(z, t, off), 0);
		memset(page, 0, sizeof(page));
		CHECK_EQ(zswap_load(z, t, off, page), 0); /* from the swap cache */
		CHECK(memcmp(page, want, ZSWAP_PAGE_SIZE) == 0);
		CHECK_EQ(zswap_get_stats(z, &s1), 0);
		CHECK_EQ(s1.zswpin - s0.zswpin, 1);
		/* New content for the slot: the cached copy must not come back. */
		fill_page(want, 7);
		CHECK_EQ(zswap_store(z, t, off, want, memcg_a), 0);
		memset(page, 0, sizeof(page));
		CHECK_EQ(zswap_load(z, t, off, page), 0);
		CHECK(memcmp(page, want, ZSWAP_PAGE_SIZE) == 0);
		CHECK_EQ(zswap_swap_free(z, t, off), 0);
		CHECK_EQ(zswap_swap_free(z, t, off), 0); /* the last: slot freed */
		CHECK_EQ(zswap_swap_free(z, t, off), -ZSWAP_ENOENT);
		CHECK_EQ(zswap_get_stats(z, &s1), 0);
		CHECK_EQ(s1.stored_pages, 0);
	}

	/* swapoff with pages still out: try_to_unuse brings each back. */
	unuse_pages(z, &k, type);
	CHECK_EQ(zswap_swapoff(z, type), 0);
	CHECK_EQ(zswap_swapoff(z, type), -ZSWAP_EINVAL);

	dangling = z;
	CHECK_EQ(zswap_destroy(z), 0);
	/* A destroyed handle is no longer accepted. */
	CHECK_EQ(zswap_destroy(dangling), -ZSWAP_EINVAL);
	CHECK_EQ(zswap_get_stats(dangling, &st), -ZSWAP_EINVAL);
	/* Every page went back to the kernel. */
	CHECK_EQ(k.pages_allocated, 0);
	CHECK(k.pages_peak > 0);

	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("capi_test: %u pages stored (%u zero), %u written back, %u loaded from zswap, "
	       "%u from the zeromap, %u from the device, peak %ld pages: ok\n",
	       stored, zeros, written_back + (unsigned)freed, from_zswap, from_zero, from_device,
	       k.pages_peak);
	return 0;
}
