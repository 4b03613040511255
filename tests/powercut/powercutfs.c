/*
 * powercutfs: a pass-through FUSE file system that can "cut the power".
 *
 *   powercutfs [--control=SOCKET] [--shadow=DIR] [--trace] BACKING MOUNTPOINT [FUSE options]
 *
 * Every operation on MOUNTPOINT goes straight through to BACKING (MOUNTPOINT may be BACKING
 * itself: the folder is opened before it is mounted over), so BACKING always holds what the
 * page cache would: the current state. Beside it the file system keeps a model of the
 * durable state, what a disk would hold after a power cut, and updates it only at the
 * durable points, taking the strict POSIX view:
 *
 *   fsync/fdatasync of a file   its data (and mode and owner) are durable: the whole content
 *                               is copied to the shadow folder (DIR/<node id>);
 *   fsync of a directory        its entries are durable: the directory's names, each naming
 *                               the inode (node) it names now, with that node's durable data;
 *   PCFS_IOC_SYNCFS (powercut.h) everything reachable is durable, as syncfs(2) makes it.
 *
 * Nothing else is ever durable: a write, create, rename, unlink, mkdir, rmdir, truncate,
 * chmod or link not followed by the matching durable point is lost in a cut. Names and data
 * are separate: a name made durable by a directory fsync names its inode with whatever data
 * that inode had made durable by then (none: an empty file), and a later fsync of the file
 * changes what the name shows, as on a real disk.
 *
 * The cut ("cut" on the control socket, or armed to happen right after or right before the Nth
 * durable point, or before the Nth modifying operation) empties BACKING and writes the durable
 * model into it; from then on every operation on the mount fails with EIO until it is unmounted, so
 * nothing the programs still running do reaches BACKING any more.
 *
 * What FUSE forwards, on Linux 6.x with /dev/fuse and libfuse 3.14:
 *   - fsync and fdatasync of a file: FUSE_FSYNC (fsync here, with its datasync flag);
 *   - fsync of a directory: FUSE_FSYNCDIR (fsyncdir here);
 *   - syncfs(2) and sync(2): nothing. The kernel sends FUSE_SYNCFS only on virtiofs (fc->sync_fs
 *     is set by virtio_fs alone), and libfuse 3.14 has no handler for it. Without a writeback
 *     cache (off here: every write goes through at once) syncfs on a FUSE mount never reaches
 *     the daemon, so on a FUSE file system syncfs makes nothing durable. To model the syncfs of
 *     a real disk, tests preload syncfs_shim.so, whose syncfs() sends PCFS_IOC_SYNCFS on the
 *     same fd once the real syncfs has returned.
 *
 * The model is per inode (struct node): backing inode numbers map to nodes; a create, mkdir,
 * mknod or symlink always makes a new node, so a reused inode number never inherits an old
 * file's durable state. A directory fsync records that directory's entries alone: a rename
 * across two folders made durable in only one of them shows the file under both names (or
 * neither) after a cut; the strict reading of POSIX allows both.
 *
 * Control socket (a Unix stream socket; one command a connection, one answer line):
 *   status             "cut=0 durable=N fsync=N fsyncdir=N syncfs=N ops=N open=N"
 *                      (open: handles not yet released)
 *   cut                cut now; answers the status
 *   arm-durable N      cut right after the Nth durable point completes (its caller sees
 *                      success, everything after it EIO)
 *   arm-before-durable N  cut when the Nth durable point is asked for, before it takes
 *                      effect (the call fails with EIO): everything since the last one is
 *                      pending, the most a partial cut can choose from
 *   arm-op N           cut just before the Nth modifying operation (which fails with EIO)
 *   syncfs             a syncfs now, from outside
 *   partial SEED       from now on a cut keeps a random part of what is pending (SEED 0:
 *                      none, the default; see "a partial cut" below)
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "powercut.h"

#define HASH_SIZE 4096
#define MAX_DEPTH 64

struct node;

struct dent {
        char *name;
        struct node *node;
};

struct node {
        uint64_t id;
        ino_t ino;     /* the backing inode while attached */
        bool attached; /* in the inode map: ino names this node's inode */
        mode_t type;   /* S_IFREG, S_IFDIR, S_IFLNK, ... */
        bool dirty;    /* data or metadata changed since its last durable copy */
        /* The durable state. */
        bool known;  /* mode/uid/gid below are set */
        mode_t mode; /* with the type bits */
        uid_t uid;
        gid_t gid;
        dev_t rdev;         /* for device nodes and FIFOs */
        bool has_data;      /* <shadow>/<id> holds the durable bytes (else: empty) */
        char *target;       /* symlink target (fixed at creation) */
        struct dent *dents; /* a directory's durable entries */
        size_t n_dents;
        /* Bookkeeping. */
        char *mat_path; /* during a cut: where it was written first (hard links) */
        bool decided;   /* during a partial cut: its data's fate is chosen */
        struct node *hash_next;
        struct node *all_next;
};

struct handle {
        int fd;
        struct node *node;
        struct handle *prev, *next; /* every open handle, freed at the end if still open */
};

static struct {
        pthread_mutex_t lock;
        int backing_fd;
        int shadow_fd;
        char *shadow_path;
        bool shadow_made;
        char *control_path;
        int control_fd;
        pthread_t control_thread;
        bool control_running;
        bool trace;
        struct node *root;
        struct handle *handles;
        uint64_t n_open;
        struct node *hash[HASH_SIZE];
        struct node *all;
        uint64_t next_id;
        bool cut;
        uint64_t n_durable, n_fsync, n_fsyncdir, n_syncfs, n_ops;
        uint64_t arm_durable, arm_op, arm_before;
        uint64_t partial_seed; /* nonzero: cuts keep a random part of what is pending */
} g = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .backing_fd = -1,
        .shadow_fd = -1,
        .control_fd = -1,
        .next_id = 1,
};

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
        va_list ap;

        if (!g.trace)
                return;
        va_start(ap, fmt);
        fputs("powercutfs: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static const char *rel(const char *path)
{
        while (*path == '/')
                path++;
        return *path ? path : ".";
}

/* ---- nodes ---- */

static struct node *node_lookup(ino_t ino)
{
        for (struct node *n = g.hash[ino % HASH_SIZE]; n; n = n->hash_next)
                if (n->ino == ino)
                        return n;
        return NULL;
}

static void node_detach(struct node *n)
{
        struct node **p = &g.hash[n->ino % HASH_SIZE];

        if (!n->attached)
                return;
        while (*p && *p != n)
                p = &(*p)->hash_next;
        if (*p)
                *p = n->hash_next;
        n->hash_next = NULL;
        n->attached = false;
}

/* A new node for a new inode; an earlier node with the same inode number is detached. */
static struct node *node_new(const struct stat *st)
{
        struct node *old = node_lookup(st->st_ino), *n;

        if (old)
                node_detach(old);
        n = calloc(1, sizeof(*n));
        if (!n)
                abort();
        n->id = g.next_id++;
        n->ino = st->st_ino;
        n->type = st->st_mode & S_IFMT;
        n->attached = true;
        n->dirty = true;
        n->hash_next = g.hash[st->st_ino % HASH_SIZE];
        g.hash[st->st_ino % HASH_SIZE] = n;
        n->all_next = g.all;
        g.all = n;
        return n;
}

/* The node of an existing inode (one made outside the mount gets a new node). */
static struct node *node_of(const struct stat *st)
{
        struct node *n = node_lookup(st->st_ino);

        if (n && n->type == (st->st_mode & S_IFMT))
                return n;
        return node_new(st);
}

static struct node *node_at(int dfd, const char *name)
{
        struct stat st;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return NULL;
        return node_of(&st);
}

static void node_mark_dirty_at(const char *path)
{
        struct node *n = node_at(g.backing_fd, rel(path));

        if (n)
                n->dirty = true;
}

static void node_set_meta(struct node *n, const struct stat *st)
{
        n->known = true;
        n->mode = st->st_mode;
        n->uid = st->st_uid;
        n->gid = st->st_gid;
        n->rdev = st->st_rdev;
}

static void dents_free(struct dent *d, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(d[i].name);
        free(d);
}

/* ---- durable points ---- */

static int copy_fd(int in, int out)
{
        char buf[1 << 16];
        off_t off = 0;

        for (;;) {
                ssize_t r = pread(in, buf, sizeof(buf), off);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return 0;
                for (ssize_t done = 0; done < r;) {
                        ssize_t w = write(out, buf + done, (size_t) (r - done));

                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        done += w;
                }
                off += r;
        }
}

/* The node's current data and metadata become durable; fd is open on its inode. */
static int durable_file(struct node *n, int fd)
{
        char name[32], tmp[40], self[48];
        struct stat st;
        int in, out, r;

        if (fstat(fd, &st) < 0)
                return -errno;
        node_set_meta(n, &st);
        if (n->type != S_IFREG) {
                n->dirty = false;
                return 0;
        }
        snprintf(name, sizeof(name), "%" PRIu64, n->id);
        snprintf(tmp, sizeof(tmp), "%s.new", name);
        /* The handle may be write-only: read the inode through a fresh open of it. */
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        in = open(self, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        out = openat(g.shadow_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0) {
                r = -errno;
                close(in);
                return r;
        }
        r = copy_fd(in, out);
        close(in);
        close(out);
        if (r == 0 && renameat(g.shadow_fd, tmp, g.shadow_fd, name) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(g.shadow_fd, tmp, 0);
                return r;
        }
        n->has_data = true;
        n->dirty = false;
        return 0;
}

static int durable_file_at(struct node *n, int dfd, const char *name)
{
        int fd, r;

        if (n->type != S_IFREG) {
                struct stat st;

                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                node_set_meta(n, &st);
                n->dirty = false;
                return 0;
        }
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = durable_file(n, fd);
        close(fd);
        return r;
}

/* The directory's entries, as they are now, become its durable entries (and its mode). */
static int durable_dir(struct node *dir, int dfd)
{
        struct dent *d = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        struct stat st;
        DIR *dp;
        int fd = dup(dfd);

        if (fd < 0)
                return -errno;
        dp = fdopendir(fd);
        if (!dp) {
                close(fd);
                return -errno;
        }
        rewinddir(dp);
        while ((de = readdir(dp))) {
                struct node *c;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                c = node_of(&st);
                /* An inode first made durable through its name: it exists, with the mode
                 * it has; its data is only what an fsync made durable (none: empty). */
                if (!c->known)
                        node_set_meta(c, &st);
                if (c->type == S_IFLNK && !c->target) {
                        char buf[PATH_MAX];
                        ssize_t len = readlinkat(dfd, de->d_name, buf, sizeof(buf) - 1);

                        if (len >= 0) {
                                buf[len] = '\0';
                                c->target = strdup(buf);
                        }
                }
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        d = realloc(d, cap * sizeof(*d));
                        if (!d)
                                abort();
                }
                d[n].name = strdup(de->d_name);
                d[n].node = c;
                n++;
        }
        closedir(dp);
        if (fstat(dfd, &st) == 0)
                node_set_meta(dir, &st);
        dents_free(dir->dents, dir->n_dents);
        dir->dents = d;
        dir->n_dents = n;
        if (dir->type == S_IFDIR)
                dir->dirty = false;
        return 0;
}

/* syncfs: every directory reachable from the root, and every changed file in them. */
static int durable_tree(struct node *dir, int dfd, int depth)
{
        int r = durable_dir(dir, dfd);

        if (r < 0 || depth > MAX_DEPTH)
                return r;
        for (size_t i = 0; i < dir->n_dents; i++) {
                struct node *c = dir->dents[i].node;
                const char *name = dir->dents[i].name;

                if (c->type == S_IFDIR) {
                        int cfd =
                                openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (cfd < 0)
                                return -errno;
                        r = durable_tree(c, cfd, depth + 1);
                        close(cfd);
                } else if (c->dirty || (c->type == S_IFREG && !c->has_data)) {
                        r = durable_file_at(c, dfd, name);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- the cut ---- */

static int remove_contents(int dfd)
{
        struct dirent *de;
        DIR *dp;
        int fd = dup(dfd), r = 0;

        if (fd < 0)
                return -errno;
        dp = fdopendir(fd);
        if (!dp) {
                close(fd);
                return -errno;
        }
        rewinddir(dp);
        while ((de = readdir(dp))) {
                struct stat st;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int cfd = openat(dfd, de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (cfd >= 0) {
                                remove_contents(cfd);
                                close(cfd);
                        }
                        if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && !r)
                                r = -errno;
                } else if (unlinkat(dfd, de->d_name, 0) < 0 && !r) {
                        r = -errno;
                }
        }
        closedir(dp);
        return r;
}

static void set_meta(int dfd, const char *name, const struct node *n)
{
        if (!n->known)
                return;
        (void) !fchownat(dfd, name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW);
        if (n->type != S_IFLNK)
                (void) !fchmodat(dfd, name, n->mode & 07777, 0);
}

static int write_file(int dfd, const char *name, const struct node *n)
{
        char shadow[32];
        int out, in, r = 0;

        out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        if (n->has_data) {
                snprintf(shadow, sizeof(shadow), "%" PRIu64, n->id);
                in = openat(g.shadow_fd, shadow, O_RDONLY | O_CLOEXEC);
                if (in < 0) {
                        r = -errno;
                } else {
                        r = copy_fd(in, out);
                        close(in);
                }
        }
        close(out);
        return r;
}

static int materialize(const struct node *dir, int dfd, const char *prefix, int depth)
{
        int first = 0;

        for (size_t i = 0; i < dir->n_dents; i++) {
                struct node *c = dir->dents[i].node;
                const char *name = dir->dents[i].name;
                char *path = NULL;
                int r = 0;

                if (asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", name) < 0)
                        abort();
                if (c->type != S_IFDIR && c->mat_path) {
                        if (linkat(g.backing_fd, c->mat_path, dfd, name, 0) < 0)
                                r = -errno;
                        free(path);
                        path = NULL;
                } else if (c->type == S_IFREG) {
                        r = write_file(dfd, name, c);
                } else if (c->type == S_IFDIR) {
                        if (mkdirat(dfd, name, 0700) < 0) {
                                r = -errno;
                        } else if (depth < MAX_DEPTH) {
                                int cfd = openat(dfd, name,
                                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                                if (cfd < 0) {
                                        r = -errno;
                                } else {
                                        r = materialize(c, cfd, path, depth + 1);
                                        close(cfd);
                                }
                        }
                } else if (c->type == S_IFLNK) {
                        if (symlinkat(c->target ? c->target : "", dfd, name) < 0)
                                r = -errno;
                } else if (mknodat(dfd, name, c->mode, c->rdev) < 0) {
                        r = -errno;
                }
                if (path) {
                        set_meta(dfd, name, c);
                        if (c->type != S_IFDIR && !c->mat_path)
                                c->mat_path = path;
                        else
                                free(path);
                }
                if (r < 0 && !first)
                        first = r;
        }
        return first;
}

/* ---- a partial cut ---- */

/*
 * A disk may have written back some of what was pending when the power went: a partial cut
 * (control command "partial SEED") keeps a random part of it on top of the durable model,
 * chosen by a generator seeded with SEED:
 *   - each changed file reachable now keeps its durable data (1/3), gets its current data
 *     (1/3), or a prefix of its current data cut at a 4 KiB boundary past the durable data's
 *     length (1/3: a torn write, partly written back);
 *   - each pending name change (a directory entry added, replaced or removed) is kept or
 *     dropped (1/2), except that changes linked by an inode leaving one name for another (a
 *     rename, or a chain of them) are kept or dropped together: a rename is atomic on a
 *     journaling file system, whatever else it reorders.
 * That is more adversarial than any real file system (which commits its journal in order),
 * and a program that orders its writes with fsync/syncfs must survive it all the same.
 */
struct change {
        struct node *dir;
        char *name;
        struct node *add;     /* the node the entry names now (NULL: removed) */
        struct node *removed; /* the node it named durably (NULL: a new name) */
        size_t parent;        /* union-find: changes kept or dropped together */
};

struct changes {
        struct change *v;
        size_t n, cap;
        unsigned n_files, n_files_kept, n_files_torn;
};

static uint64_t rnd(void)
{
        /* xorshift64* */
        g.partial_seed ^= g.partial_seed >> 12;
        g.partial_seed ^= g.partial_seed << 25;
        g.partial_seed ^= g.partial_seed >> 27;
        return g.partial_seed * 0x2545F4914F6CDD1DULL;
}

static struct dent *dent_find(struct node *dir, const char *name)
{
        for (size_t i = 0; i < dir->n_dents; i++)
                if (!strcmp(dir->dents[i].name, name))
                        return &dir->dents[i];
        return NULL;
}

static void change_add(struct changes *cs, struct node *dir, const char *name, struct node *add,
                       struct node *removed)
{
        if (cs->n == cs->cap) {
                cs->cap = cs->cap ? 2 * cs->cap : 64;
                cs->v = realloc(cs->v, cs->cap * sizeof(*cs->v));
                if (!cs->v)
                        abort();
        }
        cs->v[cs->n] = (struct change){dir, strdup(name), add, removed, cs->n};
        cs->n++;
}

static void partial_file(struct changes *cs, struct node *c, int dfd, const char *name)
{
        uint64_t choice = rnd() % 3;
        off_t old_size = 0, from;
        char shadow[32];
        struct stat st;
        int fd;

        c->decided = true;
        cs->n_files++;
        snprintf(shadow, sizeof(shadow), "%" PRIu64, c->id);
        if (c->has_data && fstatat(g.shadow_fd, shadow, &st, 0) == 0)
                old_size = st.st_size;
        if (choice == 0 || durable_file_at(c, dfd, name) < 0)
                return;
        cs->n_files_kept++;
        /* Torn: the new data up to a 4 KiB boundary past what was durable (an append or an
         * overwrite partly written back). */
        from = old_size / 4096 * 4096 + 4096;
        if (choice != 2 || fstatat(g.shadow_fd, shadow, &st, 0) < 0 || st.st_size <= from)
                return;
        fd = openat(g.shadow_fd, shadow, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        if (ftruncate(fd, from + (off_t) (rnd() % (uint64_t) ((st.st_size - from + 4095) / 4096)) *
                                          4096) == 0)
                cs->n_files_torn++;
        close(fd);
}

/* Collects the pending name changes under dir, and settles each changed file's data. */
static void partial_walk(struct changes *cs, struct node *dir, int dfd, int depth)
{
        struct dent *cur = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        struct stat st;
        DIR *dp;
        int fd = dup(dfd);

        if (fd < 0)
                return;
        dp = fdopendir(fd);
        if (!dp) {
                close(fd);
                return;
        }
        rewinddir(dp);
        while ((de = readdir(dp))) {
                struct node *c;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                c = node_of(&st);
                if (!c->known)
                        node_set_meta(c, &st);
                if (c->type == S_IFLNK && !c->target) {
                        char buf[PATH_MAX];
                        ssize_t len = readlinkat(dfd, de->d_name, buf, sizeof(buf) - 1);

                        if (len >= 0) {
                                buf[len] = '\0';
                                c->target = strdup(buf);
                        }
                }
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        cur = realloc(cur, cap * sizeof(*cur));
                        if (!cur)
                                abort();
                }
                cur[n].name = strdup(de->d_name);
                cur[n].node = c;
                n++;
        }
        closedir(dp);

        for (size_t i = 0; i < n; i++) {
                struct dent *d = dent_find(dir, cur[i].name);

                if (!d || d->node != cur[i].node)
                        change_add(cs, dir, cur[i].name, cur[i].node, d ? d->node : NULL);
        }
        for (size_t i = 0; i < dir->n_dents; i++) {
                bool gone = true;

                for (size_t j = 0; j < n && gone; j++)
                        gone = strcmp(cur[j].name, dir->dents[i].name) != 0;
                if (gone)
                        change_add(cs, dir, dir->dents[i].name, NULL, dir->dents[i].node);
        }
        for (size_t i = 0; i < n; i++) {
                struct node *c = cur[i].node;

                if (c->type == S_IFREG && !c->decided && (c->dirty || !c->has_data)) {
                        partial_file(cs, c, dfd, cur[i].name);
                } else if (c->type == S_IFDIR && depth < MAX_DEPTH && !c->decided) {
                        int cfd = openat(dfd, cur[i].name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        c->decided = true;
                        if (cfd >= 0) {
                                partial_walk(cs, c, cfd, depth + 1);
                                close(cfd);
                        }
                }
        }
        dents_free(cur, n);
}

static size_t uf_find(struct changes *cs, size_t i)
{
        while (cs->v[i].parent != i)
                i = cs->v[i].parent = cs->v[cs->v[i].parent].parent;
        return i;
}

static void change_apply(const struct change *c)
{
        struct node *dir = c->dir;
        struct dent *d = dent_find(dir, c->name);

        if (c->add && d) {
                d->node = c->add;
        } else if (c->add) {
                dir->dents = realloc(dir->dents, (dir->n_dents + 1) * sizeof(*dir->dents));
                if (!dir->dents)
                        abort();
                dir->dents[dir->n_dents].name = strdup(c->name);
                dir->dents[dir->n_dents].node = c->add;
                dir->n_dents++;
        } else if (d) {
                free(d->name);
                *d = dir->dents[--dir->n_dents];
        }
}

static void persist_some(void)
{
        struct changes cs = {0};
        unsigned n_units = 0, n_kept = 0, n_changes_kept = 0;
        bool *keep;

        for (struct node *n = g.all; n; n = n->all_next)
                n->decided = false;
        g.root->decided = true;
        partial_walk(&cs, g.root, g.backing_fd, 0);
        /* An inode that leaves a name for another: the two changes go together. */
        for (size_t i = 0; i < cs.n; i++)
                for (size_t j = 0; j < cs.n; j++)
                        if (i != j && cs.v[i].add && cs.v[i].add == cs.v[j].removed)
                                cs.v[uf_find(&cs, i)].parent = uf_find(&cs, j);
        keep = calloc(cs.n ? cs.n : 1, sizeof(*keep));
        if (!keep)
                abort();
        for (size_t i = 0; i < cs.n; i++)
                if (uf_find(&cs, i) == i) {
                        n_units++;
                        keep[i] = rnd() & 1;
                        n_kept += keep[i];
                }
        for (size_t i = 0; i < cs.n; i++) {
                if (keep[uf_find(&cs, i)]) {
                        change_apply(&cs.v[i]);
                        n_changes_kept++;
                }
                free(cs.v[i].name);
        }
        fprintf(stderr,
                "powercutfs: partial cut: kept %u of %zu pending name changes (%u of %u "
                "units), the new data of %u of %u changed files (%u torn)\n",
                n_changes_kept, cs.n, n_kept, n_units, cs.n_files_kept, cs.n_files,
                cs.n_files_torn);
        free(keep);
        free(cs.v);
}

static void do_cut(void)
{
        int r;

        if (g.cut)
                return;
        g.cut = true;
        if (g.partial_seed)
                persist_some();
        r = remove_contents(g.backing_fd);
        if (r == 0)
                r = materialize(g.root, g.backing_fd, "", 0);
        if (g.root->known)
                (void) !fchmod(g.backing_fd, g.root->mode & 07777);
        for (struct node *n = g.all; n; n = n->all_next) {
                free(n->mat_path);
                n->mat_path = NULL;
        }
        if (r < 0)
                fprintf(stderr, "powercutfs: writing the durable state: %s\n", strerror(-r));
        fprintf(stderr,
                "powercutfs: power cut after %" PRIu64 " durable points (%" PRIu64
                " fsync, %" PRIu64 " fsyncdir, %" PRIu64 " syncfs) and %" PRIu64 " operations\n",
                g.n_durable, g.n_fsync, g.n_fsyncdir, g.n_syncfs, g.n_ops);
}

/* After a durable point: the armed cut. */
static void durable_done(const char *what)
{
        g.n_durable++;
        trace("durable point %" PRIu64 ": %s", g.n_durable, what);
        if (g.arm_durable && g.n_durable >= g.arm_durable)
                do_cut();
}

/* Before a durable point: the cut armed for just before it (the call fails with EIO). */
static int durable_begin(void)
{
        if (g.cut)
                return -EIO;
        if (g.arm_before && g.n_durable + 1 >= g.arm_before) {
                do_cut();
                return -EIO;
        }
        return 0;
}

/* Before an operation: EIO once the power is cut. */
static int op_read(void)
{
        return g.cut ? -EIO : 0;
}

/* Before a modifying operation: counts it, and cuts when armed for it. */
static int op_modify(const char *what, const char *path)
{
        if (g.cut)
                return -EIO;
        g.n_ops++;
        if (g.arm_op && g.n_ops >= g.arm_op) {
                do_cut();
                return -EIO;
        }
        trace("op %" PRIu64 ": %s %s", g.n_ops, what, path);
        return 0;
}

/* ---- the operations ---- */

/* LOCKED(expr): expr under the lock (the control socket's thread takes it too). */
static int unlock_with(int r)
{
        pthread_mutex_unlock(&g.lock);
        return r;
}

#define LOCKED(expr) (pthread_mutex_lock(&g.lock), unlock_with(expr))

static struct handle *fh(const struct fuse_file_info *fi)
{
        return fi ? (struct handle *) (uintptr_t) fi->fh : NULL;
}

static int do_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
        int r = op_read();

        if (r < 0)
                return r;
        if (fh(fi))
                return fstat(fh(fi)->fd, st) < 0 ? -errno : 0;
        return fstatat(g.backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
        return LOCKED(do_getattr(path, st, fi));
}

static int do_access(const char *path, int mask)
{
        int r = op_read();

        if (r < 0)
                return r;
        return faccessat(g.backing_fd, rel(path), mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pc_access(const char *path, int mask)
{
        return LOCKED(do_access(path, mask));
}

static int do_readlink(const char *path, char *buf, size_t size)
{
        ssize_t len;
        int r = op_read();

        if (r < 0)
                return r;
        len = readlinkat(g.backing_fd, rel(path), buf, size - 1);
        if (len < 0)
                return -errno;
        buf[len] = '\0';
        return 0;
}

static int pc_readlink(const char *path, char *buf, size_t size)
{
        return LOCKED(do_readlink(path, buf, size));
}

/* A new inode at path: its node. */
static void created(const char *path)
{
        struct stat st;

        if (fstatat(g.backing_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0)
                node_new(&st);
}

static int do_mknod(const char *path, mode_t mode, dev_t rdev)
{
        int r = op_modify("mknod", path);

        if (r < 0)
                return r;
        if (mknodat(g.backing_fd, rel(path), mode, rdev) < 0)
                return -errno;
        created(path);
        return 0;
}

static int pc_mknod(const char *path, mode_t mode, dev_t rdev)
{
        return LOCKED(do_mknod(path, mode, rdev));
}

static int do_mkdir(const char *path, mode_t mode)
{
        int r = op_modify("mkdir", path);

        if (r < 0)
                return r;
        if (mkdirat(g.backing_fd, rel(path), mode) < 0)
                return -errno;
        created(path);
        return 0;
}

static int pc_mkdir(const char *path, mode_t mode)
{
        return LOCKED(do_mkdir(path, mode));
}

static int do_unlink(const char *path, int flags)
{
        int r = op_modify(flags ? "rmdir" : "unlink", path);

        if (r < 0)
                return r;
        return unlinkat(g.backing_fd, rel(path), flags) < 0 ? -errno : 0;
}

static int pc_unlink(const char *path)
{
        return LOCKED(do_unlink(path, 0));
}

static int pc_rmdir(const char *path)
{
        return LOCKED(do_unlink(path, AT_REMOVEDIR));
}

static int do_symlink(const char *target, const char *path)
{
        struct stat st;
        int r = op_modify("symlink", path);

        if (r < 0)
                return r;
        if (symlinkat(target, g.backing_fd, rel(path)) < 0)
                return -errno;
        if (fstatat(g.backing_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0)
                node_new(&st)->target = strdup(target);
        return 0;
}

static int pc_symlink(const char *target, const char *path)
{
        return LOCKED(do_symlink(target, path));
}

static int do_rename(const char *from, const char *to, unsigned int flags)
{
        int r = op_modify("rename", from);

        if (r < 0)
                return r;
        trace("    to %s (flags %u)", to, flags);
        if (renameat2(g.backing_fd, rel(from), g.backing_fd, rel(to), flags) < 0)
                return -errno;
        return 0;
}

static int pc_rename(const char *from, const char *to, unsigned int flags)
{
        return LOCKED(do_rename(from, to, flags));
}

static int do_link(const char *from, const char *to)
{
        int r = op_modify("link", to);

        if (r < 0)
                return r;
        return linkat(g.backing_fd, rel(from), g.backing_fd, rel(to), 0) < 0 ? -errno : 0;
}

static int pc_link(const char *from, const char *to)
{
        return LOCKED(do_link(from, to));
}

static int do_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
        int r = op_modify("chmod", path);

        if (r < 0)
                return r;
        if (fh(fi)) {
                if (fchmod(fh(fi)->fd, mode) < 0)
                        return -errno;
                fh(fi)->node->dirty = true;
                return 0;
        }
        if (fchmodat(g.backing_fd, rel(path), mode, 0) < 0)
                return -errno;
        node_mark_dirty_at(path);
        return 0;
}

static int pc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
        return LOCKED(do_chmod(path, mode, fi));
}

static int do_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
        int r = op_modify("chown", path);

        if (r < 0)
                return r;
        if (fh(fi)) {
                if (fchown(fh(fi)->fd, uid, gid) < 0)
                        return -errno;
                fh(fi)->node->dirty = true;
                return 0;
        }
        if (fchownat(g.backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        node_mark_dirty_at(path);
        return 0;
}

static int pc_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
        return LOCKED(do_chown(path, uid, gid, fi));
}

static int do_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
        int fd, r = op_modify("truncate", path);

        if (r < 0)
                return r;
        if (fh(fi)) {
                if (ftruncate(fh(fi)->fd, size) < 0)
                        return -errno;
                fh(fi)->node->dirty = true;
                return 0;
        }
        fd = openat(g.backing_fd, rel(path), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = ftruncate(fd, size) < 0 ? -errno : 0;
        close(fd);
        node_mark_dirty_at(path);
        return r;
}

static int pc_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
        return LOCKED(do_truncate(path, size, fi));
}

static int do_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
        int r = op_modify("utimens", path);

        if (r < 0)
                return r;
        if (fh(fi))
                return futimens(fh(fi)->fd, tv) < 0 ? -errno : 0;
        return utimensat(g.backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pc_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
        return LOCKED(do_utimens(path, tv, fi));
}

static int handle_new(struct fuse_file_info *fi, int fd)
{
        struct handle *h;
        struct stat st;

        if (fstat(fd, &st) < 0) {
                int e = -errno;

                close(fd);
                return e;
        }
        h = malloc(sizeof(*h));
        if (!h)
                abort();
        h->fd = fd;
        h->node = node_of(&st);
        h->prev = NULL;
        h->next = g.handles;
        if (g.handles)
                g.handles->prev = h;
        g.handles = h;
        g.n_open++;
        fi->fh = (uint64_t) (uintptr_t) h;
        return 0;
}

static int do_open(const char *path, struct fuse_file_info *fi)
{
        int fd, r;
        bool modifies = (fi->flags & O_TRUNC) != 0;

        r = modifies ? op_modify("open O_TRUNC", path) : op_read();
        if (r < 0)
                return r;
        fd = openat(g.backing_fd, rel(path), (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = handle_new(fi, fd);
        if (r == 0 && modifies)
                fh(fi)->node->dirty = true;
        /* Every read and write comes here, none is answered from the page cache: after a cut
         * they all fail. */
        fi->direct_io = 1;
        return r;
}

static int pc_open(const char *path, struct fuse_file_info *fi)
{
        return LOCKED(do_open(path, fi));
}

static int do_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
        struct stat st;
        bool existed;
        int fd, r = op_modify("create", path);

        if (r < 0)
                return r;
        existed = fstatat(g.backing_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0;
        fd = openat(g.backing_fd, rel(path), fi->flags | O_CREAT | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        if (!existed) {
                if (fstat(fd, &st) < 0) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                node_new(&st);
        }
        r = handle_new(fi, fd);
        if (r == 0)
                fh(fi)->node->dirty = true;
        fi->direct_io = 1;
        return r;
}

static int pc_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
        return LOCKED(do_create(path, mode, fi));
}

static int do_read(char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
        ssize_t n;
        int r = op_read();

        if (r < 0)
                return r;
        n = pread(fh(fi)->fd, buf, size, off);
        return n < 0 ? -errno : (int) n;
}

static int pc_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
        return LOCKED(do_read(buf, size, off, fi));
}

static int do_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
        ssize_t n;
        int r = op_modify("write", path ? path : "(unlinked)");

        if (r < 0)
                return r;
        n = pwrite(fh(fi)->fd, buf, size, off);
        if (n < 0)
                return -errno;
        fh(fi)->node->dirty = true;
        return (int) n;
}

static int pc_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
        return LOCKED(do_write(path, buf, size, off, fi));
}

static int do_statfs(struct statvfs *st)
{
        int r = op_read();

        if (r < 0)
                return r;
        return fstatvfs(g.backing_fd, st) < 0 ? -errno : 0;
}

static int pc_statfs(const char *path, struct statvfs *st)
{
        return LOCKED(do_statfs(st));
}

static void handle_free(struct handle *h)
{
        if (h->prev)
                h->prev->next = h->next;
        else
                g.handles = h->next;
        if (h->next)
                h->next->prev = h->prev;
        g.n_open--;
        close(h->fd);
        free(h);
}

static int pc_release(const char *path, struct fuse_file_info *fi)
{
        pthread_mutex_lock(&g.lock);
        if (fh(fi))
                handle_free(fh(fi));
        pthread_mutex_unlock(&g.lock);
        return 0;
}

static int do_fsync(int datasync, struct fuse_file_info *fi)
{
        int r = durable_begin();

        if (r < 0)
                return r;
        r = durable_file(fh(fi)->node, fh(fi)->fd);
        if (r < 0)
                return r;
        g.n_fsync++;
        durable_done(datasync ? "fdatasync" : "fsync");
        return 0;
}

static int pc_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
        return LOCKED(do_fsync(datasync, fi));
}

static int do_opendir(const char *path, struct fuse_file_info *fi)
{
        int fd, r = op_read();

        if (r < 0)
                return r;
        fd = openat(g.backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return handle_new(fi, fd);
}

static int pc_opendir(const char *path, struct fuse_file_info *fi)
{
        return LOCKED(do_opendir(path, fi));
}

static int do_readdir(void *buf, fuse_fill_dir_t filler, struct fuse_file_info *fi)
{
        struct dirent *de;
        DIR *dp;
        int fd, r = op_read();

        if (r < 0)
                return r;
        fd = dup(fh(fi)->fd);
        if (fd < 0)
                return -errno;
        dp = fdopendir(fd);
        if (!dp) {
                r = -errno;
                close(fd);
                return r;
        }
        rewinddir(dp);
        while ((de = readdir(dp))) {
                struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t) DTTOIF(de->d_type)};

                if (filler(buf, de->d_name, &st, 0, 0))
                        break;
        }
        closedir(dp);
        return 0;
}

static int pc_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
        return LOCKED(do_readdir(buf, filler, fi));
}

static int pc_releasedir(const char *path, struct fuse_file_info *fi)
{
        return pc_release(path, fi);
}

static int do_fsyncdir(int datasync, struct fuse_file_info *fi)
{
        int r = durable_begin();

        if (r < 0)
                return r;
        r = durable_dir(fh(fi)->node, fh(fi)->fd);
        if (r < 0)
                return r;
        g.n_fsyncdir++;
        durable_done("fsyncdir");
        return 0;
}

static int pc_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
        return LOCKED(do_fsyncdir(datasync, fi));
}

static int do_syncfs(const char *who)
{
        int r = durable_begin();

        if (r < 0)
                return r;
        r = durable_tree(g.root, g.backing_fd, 0);
        if (r < 0)
                return r;
        g.n_syncfs++;
        durable_done(who);
        return 0;
}

static int do_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
        int r = op_modify("fallocate", path ? path : "(unlinked)");

        if (r < 0)
                return r;
        if (fallocate(fh(fi)->fd, mode, off, len) < 0)
                return -errno;
        fh(fi)->node->dirty = true;
        return 0;
}

static int pc_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
        return LOCKED(do_fallocate(path, mode, off, len, fi));
}

static int pc_ioctl(const char *path, unsigned int cmd, void *arg, struct fuse_file_info *fi,
                    unsigned int flags, void *data)
{
        if (cmd != PCFS_IOC_SYNCFS)
                return -ENOTTY;
        return LOCKED(do_syncfs("syncfs"));
}

/* ---- the control socket ---- */

static void status_line(char *buf, size_t size)
{
        snprintf(buf, size,
                 "cut=%d durable=%" PRIu64 " fsync=%" PRIu64 " fsyncdir=%" PRIu64 " syncfs=%" PRIu64
                 " ops=%" PRIu64 " open=%" PRIu64 "\n",
                 g.cut ? 1 : 0, g.n_durable, g.n_fsync, g.n_fsyncdir, g.n_syncfs, g.n_ops,
                 g.n_open);
}

static void control_command(char *cmd, char *out, size_t size)
{
        unsigned long long n;

        cmd[strcspn(cmd, "\r\n")] = '\0';
        pthread_mutex_lock(&g.lock);
        if (!strcmp(cmd, "status")) {
                status_line(out, size);
        } else if (!strcmp(cmd, "cut")) {
                do_cut();
                status_line(out, size);
        } else if (!strcmp(cmd, "syncfs")) {
                int r = do_syncfs("syncfs (control)");

                if (r < 0)
                        snprintf(out, size, "error %s\n", strerror(-r));
                else
                        status_line(out, size);
        } else if (sscanf(cmd, "arm-durable %llu", &n) == 1) {
                g.arm_durable = n;
                if (n && g.n_durable >= n)
                        do_cut();
                status_line(out, size);
        } else if (sscanf(cmd, "partial %llu", &n) == 1) {
                /* (a seed of 0 would stay 0 in xorshift: it means "off") */
                g.partial_seed = n;
                status_line(out, size);
        } else if (sscanf(cmd, "arm-before-durable %llu", &n) == 1) {
                g.arm_before = n;
                status_line(out, size);
        } else if (sscanf(cmd, "arm-op %llu", &n) == 1) {
                g.arm_op = n;
                status_line(out, size);
        } else {
                snprintf(out, size, "error unknown command\n");
        }
        pthread_mutex_unlock(&g.lock);
}

static void *control_main(void *arg)
{
        for (;;) {
                char cmd[256], out[256];
                size_t len = 0;
                int c = accept4(g.control_fd, NULL, NULL, SOCK_CLOEXEC);

                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return NULL;
                }
                while (len < sizeof(cmd) - 1) {
                        ssize_t r = read(c, cmd + len, sizeof(cmd) - 1 - len);

                        if (r <= 0)
                                break;
                        len += (size_t) r;
                        if (memchr(cmd, '\n', len))
                                break;
                }
                cmd[len] = '\0';
                control_command(cmd, out, sizeof(out));
                (void) !write(c, out, strlen(out));
                close(c);
        }
}

/* ---- start and end ---- */

/* The backing folder as it is now is the durable state (it is on a real disk). */
static int scan(struct node *dir, int dfd, int depth)
{
        int r = durable_dir(dir, dfd);

        if (r < 0 || depth > MAX_DEPTH)
                return r;
        for (size_t i = 0; i < dir->n_dents && r == 0; i++) {
                struct node *c = dir->dents[i].node;

                if (c->type == S_IFDIR) {
                        int cfd = openat(dfd, dir->dents[i].name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (cfd < 0)
                                return -errno;
                        r = scan(c, cfd, depth + 1);
                        close(cfd);
                } else {
                        r = durable_file_at(c, dfd, dir->dents[i].name);
                }
        }
        return r;
}

static void *pc_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
        /* Every write reaches us at once: nothing waits in a kernel writeback cache. */
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
        cfg->use_ino = 1;
        cfg->nullpath_ok = 1;
        cfg->hard_remove = 1; /* no .fuse_hidden files: an unlinked open file stays open */
        cfg->entry_timeout = 0;
        cfg->attr_timeout = 0;
        cfg->negative_timeout = 0;
        cfg->direct_io = 1;
        if (g.control_fd >= 0 && pthread_create(&g.control_thread, NULL, control_main, NULL) == 0)
                g.control_running = true;
        return NULL;
}

static void pc_destroy(void *data)
{
        char line[256];

        status_line(line, sizeof(line));
        fprintf(stderr, "powercutfs: unmounted: %s", line);
}

static const struct fuse_operations ops = {
        .getattr = pc_getattr,
        .readlink = pc_readlink,
        .mknod = pc_mknod,
        .mkdir = pc_mkdir,
        .unlink = pc_unlink,
        .rmdir = pc_rmdir,
        .symlink = pc_symlink,
        .rename = pc_rename,
        .link = pc_link,
        .chmod = pc_chmod,
        .chown = pc_chown,
        .truncate = pc_truncate,
        .open = pc_open,
        .read = pc_read,
        .write = pc_write,
        .statfs = pc_statfs,
        .release = pc_release,
        .fsync = pc_fsync,
        .opendir = pc_opendir,
        .readdir = pc_readdir,
        .releasedir = pc_releasedir,
        .fsyncdir = pc_fsyncdir,
        .init = pc_init,
        .destroy = pc_destroy,
        .access = pc_access,
        .create = pc_create,
        .utimens = pc_utimens,
        .fallocate = pc_fallocate,
        .ioctl = pc_ioctl,
};

static int control_listen(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "powercutfs: control socket path too long: %s\n", path);
                return -1;
        }
        strcpy(sa.sun_path, path);
        unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
                fprintf(stderr, "powercutfs: control socket %s: %s\n", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

static void cleanup(void)
{
        if (g.control_running) {
                shutdown(g.control_fd, SHUT_RDWR);
                pthread_cancel(g.control_thread);
                pthread_join(g.control_thread, NULL);
        }
        if (g.control_fd >= 0) {
                close(g.control_fd);
                unlink(g.control_path);
        }
        while (g.handles)
                handle_free(g.handles);
        for (struct node *n = g.all, *next; n; n = next) {
                next = n->all_next;
                dents_free(n->dents, n->n_dents);
                free(n->target);
                free(n->mat_path);
                free(n);
        }
        if (g.shadow_fd >= 0) {
                remove_contents(g.shadow_fd);
                close(g.shadow_fd);
                if (g.shadow_made)
                        rmdir(g.shadow_path);
        }
        free(g.shadow_path);
        free(g.control_path);
        if (g.backing_fd >= 0)
                close(g.backing_fd);
}

static void usage(void)
{
        fprintf(stderr, "usage: powercutfs [--control=SOCKET] [--shadow=DIR] [--trace] BACKING "
                        "MOUNTPOINT [FUSE options]\n");
}

int main(int argc, char **argv)
{
        char **fargv = calloc((size_t) argc + 4, sizeof(char *));
        const char *backing = NULL;
        struct stat st;
        int fargc = 0, r;

        if (!fargv)
                return 1;
        fargv[fargc++] = argv[0];
        for (int i = 1; i < argc; i++) {
                if (!strncmp(argv[i], "--control=", 10))
                        g.control_path = strdup(argv[i] + 10);
                else if (!strncmp(argv[i], "--shadow=", 9))
                        g.shadow_path = strdup(argv[i] + 9);
                else if (!strcmp(argv[i], "--trace"))
                        g.trace = true;
                else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        usage();
                        free(fargv);
                        return 0;
                } else if (!backing && argv[i][0] != '-')
                        backing = argv[i];
                else
                        fargv[fargc++] = argv[i];
        }
        if (!backing || fargc < 2) {
                usage();
                free(fargv);
                return 2;
        }
        /* One thread serves the mount (the control socket has its own). */
        fargv[fargc++] = "-s";
        fargv[fargc++] = "-o";
        fargv[fargc++] = "fsname=powercutfs,subtype=powercut";

        g.backing_fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (g.backing_fd < 0) {
                fprintf(stderr, "powercutfs: %s: %s\n", backing, strerror(errno));
                free(fargv);
                return 1;
        }
        if (!g.shadow_path) {
                const char *tmp = getenv("TMPDIR");

                if (asprintf(&g.shadow_path, "%s/powercutfs-shadow-XXXXXX",
                             tmp && *tmp ? tmp : "/tmp") < 0 ||
                    !mkdtemp(g.shadow_path)) {
                        fprintf(stderr, "powercutfs: cannot make a shadow folder: %s\n",
                                strerror(errno));
                        free(fargv);
                        cleanup();
                        return 1;
                }
                g.shadow_made = true;
        }
        g.shadow_fd = open(g.shadow_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (g.shadow_fd < 0 || fstat(g.backing_fd, &st) < 0) {
                fprintf(stderr, "powercutfs: %s: %s\n", g.shadow_path, strerror(errno));
                free(fargv);
                cleanup();
                return 1;
        }
        g.root = node_new(&st);
        node_set_meta(g.root, &st);
        r = scan(g.root, g.backing_fd, 0);
        if (r < 0) {
                fprintf(stderr, "powercutfs: reading %s: %s\n", backing, strerror(-r));
                free(fargv);
                cleanup();
                return 1;
        }
        if (g.control_path) {
                g.control_fd = control_listen(g.control_path);
                if (g.control_fd < 0) {
                        free(fargv);
                        cleanup();
                        return 1;
                }
        }
        r = fuse_main(fargc, fargv, &ops, NULL);
        free(fargv);
        cleanup();
        return r;
}
