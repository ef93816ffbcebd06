/* The pipe protocol, line by line, against a compiled table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "fixture.h"
#include "ibp_explain.h"
#include "pipe_proto.h"

static const char statics[] =
    "[{\"qname\":\"dotters.network\",\"qtype\":\"NS\",\"content\":\"dns-01.dotters.network.\",\"ttl\":3600},"
    " {\"qname\":\"dotters.network\",\"qtype\":\"A\",\"content\":\"192.96.202.175\",\"ttl\":3600},"
    " {\"qname\":\"dotters.network\",\"qtype\":\"MX\",\"content\":\"10 mail.dotters.network.\",\"ttl\":3600},"
    " {\"qname\":\"dotters.network\",\"qtype\":\"TXT\",\"content\":\"\\\"v=spf1 -all\\\"\",\"ttl\":300},"
    " {\"qname\":\"_sip._udp.dotters.network\",\"qtype\":\"SRV\",\"content\":\"10 20 5060 sip.dotters.network.\",\"ttl\":60},"
    " {\"qname\":\"www.dotters.network\",\"qtype\":\"CNAME\",\"content\":\"dotters.network.\",\"ttl\":3600},"
    " {\"qname\":\"_acme-challenge.dotters.network\",\"qtype\":\"TXT\",\"content\":\"http://127.0.0.1/acme\",\"ttl\":0}]";

#define ZID "333188168"

typedef struct fix {
    fixture_table_t tb;    /* first: fixture_table_new() fills it */
    pipe_state_t st;
    pipe_out_t out;
    char text[PIPE_OUT_CAP + 1];
} fix_t;

static int setup(void **state)
{
    fix_t *f = fixture_table_new(sizeof(fix_t), statics);
    f->st.table = &f->tb.t;
    *state = f;
    return 0;
}

static const char *send_len(fix_t *f, const char *line, size_t len)
{
    f->out.len = 0;
    pipe_handle_line(&f->st, line, len, &f->out);
    memcpy(f->text, f->out.buf, f->out.len);
    f->text[f->out.len] = '\0';
    return f->text;
}

static const char *send(fix_t *f, const char *line)
{
    return send_len(f, line, strlen(line));
}

static void helo(fix_t *f, const char *abi)
{
    char line[16];
    snprintf(line, sizeof line, "HELO\t%s", abi);
    assert_true(!strncmp(send(f, line), "OK\tibpdns-pipe", 14));
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Sums the hits of the counter files in dir by "domain|member|client|family"
 * on the UTC day `day` (0: any), in every file or the one `only` names. */
static uint64_t counted_in(const char *dir, const char *only, uint32_t day, const char *want)
{
    uint64_t sum = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!strstr(e->d_name, IBP_COUNTER_SUFFIX) || strstr(e->d_name, ".tmp") ||
            (only && strcmp(e->d_name, only)))
            continue;
        int fd = open(path, O_RDWR);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ibp_counter_view_t v;
        ibp_err_t err;
        assert_true(ibp_counter_attach(m, (size_t)st.st_size, &v, &err));
        for (uint32_t i = 0; i < v.h->n_slots; i++) {
            ibp_uc_entry_t en;
            if (ibp_counter_slot(&v, i, &en, &err) != IBP_UC_USED)
                continue;
            char key[1024];
            snprintf(key, sizeof key, "%.*s|%.*s|%.*s|%u", (int)en.domain.len, en.domain.s,
                     (int)en.member.len, en.member.s, (int)en.client.len, en.client.s,
                     en.family);
            if (!strcmp(key, want) && (!day || en.day == day))
                sum += en.hits;
        }
        munmap(m, (size_t)st.st_size);
        close(fd);
    }
    closedir(d);
    return sum;
}

static uint64_t counted(const char *dir, const char *want)
{
    return counted_in(dir, NULL, 0, want);
}

/* The names of the counter files in dir, oldest first (their names carry
 * the nanosecond they were made); how many. */
static int counter_files(const char *dir, char names[][256], int max)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, IBP_COUNTER_SUFFIX) && !strstr(e->d_name, ".tmp") && n < max)
            snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    for (int i = 1; i < n; i++)   /* same length: same pid, 19-digit times until 2286 */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char tmp[256];
            memcpy(tmp, names[j], 256);
            memcpy(names[j], names[j - 1], 256);
            memcpy(names[j - 1], tmp, 256);
        }
    return n;
}

/* A lookup's records are counted by (domain, member, client class, family)
 * once the answer is written (commit), never before; static and SOA
 * answers count nothing. */
static void answered_dynamic_records_are_counted_after_the_write(void **state)
{
    fix_t *f = *state;
    char dir[] = "/tmp/ibpdns-usage-XXXXXX";
    assert_non_null(mkdtemp(dir));
    pipe_usage_t u = {.dir = dir, .file = {.fd = -1}};
    f->st.usage = &u;
    helo(f, "3");
    const char *q = "Q\tpolkadot.dotters.network\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t89.160.20.112/28";
    assert_non_null(strstr(send(f, q), "\tA\t"));
    send(f, "Q\tdotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0");
    send(f, "Q\tdotters.network\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t89.160.20.112/28");
    const char *key = "polkadot.dotters.network|Amforc|SE\tSweden\tAS29518\tBredband2 AB|0";
    assert_int_equal(counted(dir, key), 0);   /* staged: nothing reached PowerDNS yet */
    pipe_usage_commit(&u);
    assert_int_equal(counted(dir, key), 1);
    send(f, q);
    send(f, q);
    pipe_usage_commit(&u);
    assert_int_equal(counted(dir, key), 3);
    assert_int_equal(u.counted, 3);   /* the static and SOA answers counted nothing */
    /* A new table: the staged hits go to the old table's file, the next to a new one. */
    send(f, q);
    pipe_usage_table_changed(&u);
    assert_int_equal(counted(dir, key), 4);
    pipe_usage_close(&u);
    f->st.usage = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

#define SE "SE\tSweden\tAS29518\tBredband2 AB"

/* One ANY lookup of host for a client of ecs, its answer written. */
static void ask(fix_t *f, const char *host, const char *ecs)
{
    char line[256];
    snprintf(line, sizeof line, "Q\t%s\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t%s", host, ecs);
    assert_non_null(strstr(send(f, line), "\tA\t"));
}

/* The coprocess's clock moved to `days` after today, read as it is once per
 * read from PowerDNS: the inline stage's remembered slot is then in use. */
static uint32_t tick_at(pipe_usage_t *u, int64_t days)
{
    u->clock_offset_s = days * 86400;
    pipe_usage_tick(u);
    return (uint32_t)(u->now / 86400);
}

/* The remembered slot (the last hit's key) serves only that key on that day:
 * another class, host or member right after it, or the next day, gets its
 * own slot, and going back finds the first one again. */
static void the_remembered_slot_serves_only_its_key_and_day(void **state)
{
    fix_t *f = *state;
    char dir[] = "/tmp/ibpdns-usage-XXXXXX";
    assert_non_null(mkdtemp(dir));
    pipe_usage_t u = {.dir = dir, .file = {.fd = -1}};
    f->st.usage = &u;
    helo(f, "3");
    uint32_t day = tick_at(&u, 0);
    const char *pd = "polkadot.dotters.network", *se = "89.160.20.112/28";
    ask(f, pd, se);
    ask(f, pd, se);
    ask(f, pd, "81.2.69.160/28");     /* same host, member and family; another class */
    ask(f, pd, se);
    ask(f, pd, "2001:218::/32");
    ask(f, "kusama.dotters.network", se);   /* same class and member, another host */
    ask(f, pd, se);
    ask(f, pd, "216.160.83.56/32");   /* another member and class */
    ask(f, pd, se);
    pipe_usage_commit(&u);
    assert_int_equal(counted_in(dir, NULL, day, "polkadot.dotters.network|Amforc|" SE "|0"), 5);
    assert_int_equal(counted(dir, "polkadot.dotters.network|Amforc|GB\tUnited Kingdom\t\t|0"), 1);
    assert_int_equal(counted(dir, "polkadot.dotters.network|Amforc|JP\tJapan\t\t|0"), 1);
    assert_int_equal(counted(dir, "kusama.dotters.network|Amforc|" SE "|0"), 1);
    assert_int_equal(counted(dir, "polkadot.dotters.network|Stake Plus|US\tUnited States\tAS209\t|0"),
                     1);
    /* The next day, with the same key's slot remembered from today. */
    assert_int_equal(tick_at(&u, 1), day + 1);
    ask(f, pd, se);
    ask(f, pd, se);
    assert_int_equal(tick_at(&u, 0), day);
    ask(f, pd, se);
    pipe_usage_commit(&u);
    assert_int_equal(counted_in(dir, NULL, day + 1, "polkadot.dotters.network|Amforc|" SE "|0"), 2);
    assert_int_equal(counted_in(dir, NULL, day, "polkadot.dotters.network|Amforc|" SE "|0"), 6);
    assert_int_equal(u.counted, 12);
    /* Straight to the stage: the same host, family and class, another member. */
    const ibp_table_t *t = &f->tb.t;
    uint32_t a = 0, b = 1;
    while (b < t->n[IBP_SEC_TARGETS] &&
           (t->targets[b].member == IBP_TBL_NONE || t->targets[a].member == IBP_TBL_NONE ||
            !strcmp(ibp_table_str(t, t->members[t->targets[a].member].name),
                    ibp_table_str(t, t->members[t->targets[b].member].name))))
        a = t->targets[a].member == IBP_TBL_NONE ? b : a, b++;
    assert_true(b < t->n[IBP_SEC_TARGETS]);
    const ibp_tbl_name_t *nm = &t->names[t->hosts[0].name];
    uint32_t len;
    const char *cls = ibp_table_client_text(t, 0, &len);
    char ka[512], kb[512];
    snprintf(ka, sizeof ka, "%.*s|%s|%.*s|0", (int)nm->name_len, ibp_table_str(t, nm->name),
             ibp_table_str(t, t->members[t->targets[a].member].name), (int)len, cls);
    snprintf(kb, sizeof kb, "%.*s|%s|%.*s|0", (int)nm->name_len, ibp_table_str(t, nm->name),
             ibp_table_str(t, t->members[t->targets[b].member].name), (int)len, cls);
    uint64_t had_a = counted(dir, ka), had_b = counted(dir, kb);
    pipe_usage_stage(&u, t, 0, 0, &a, 1, 0);
    pipe_usage_stage(&u, t, 0, 0, &b, 1, 0);
    pipe_usage_stage(&u, t, 0, 0, &a, 1, 0);
    pipe_usage_stage(&u, t, 0, 1, &a, 1, 0);   /* and the other family */
    pipe_usage_commit(&u);
    assert_int_equal(counted(dir, ka), had_a + 2);
    assert_int_equal(counted(dir, kb), had_b + 1);
    ka[strlen(ka) - 1] = '1';
    assert_int_equal(counted(dir, ka), 1);
    pipe_usage_close(&u);
    /* A caller that never ticks: every stage reads the clock, so the day
     * moving between two stages of one key moves its hits. */
    pipe_usage_t untimed = {.dir = dir, .file = {.fd = -1}};
    f->st.usage = &untimed;
    ask(f, pd, se);
    untimed.clock_offset_s = 86400;
    ask(f, pd, se);
    pipe_usage_commit(&untimed);
    assert_int_equal(counted_in(dir, NULL, day + 1, "polkadot.dotters.network|Amforc|" SE "|0"), 3);
    pipe_usage_close(&untimed);
    f->st.usage = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A full counter file is left for a new one: a key of the old file is
 * counted in the new one, not at its old slot's index there, and once no
 * new file can be made (the directory went away) a key remembered from the
 * file just left is uncounted, never staged into the file closed under it. */
static void a_left_file_takes_its_remembered_slots_with_it(void **state)
{
    fix_t *f = *state;
    char dir[] = "/tmp/ibpdns-usage-XXXXXX", gone[64];
    assert_non_null(mkdtemp(dir));
    snprintf(gone, sizeof gone, "%s.gone", dir);
    pipe_usage_t u = {.dir = dir, .file = {.fd = -1}};
    ibp_log_t quiet = {.level = IBP_LOG_FATAL, .ident = "test", .fd = -1};
    u.log = &quiet;
    f->st.usage = &u;
    helo(f, "3");
    const char *pd = "polkadot.dotters.network", *se = "89.160.20.112/28";
    const char *key = "polkadot.dotters.network|Amforc|" SE "|0";
    char names[4][256];
    int days = 0;   /* one new key a day, until the file is full */
    for (; counter_files(dir, names, 4) < 2 && days < 2 * (int)PIPE_USAGE_SLOTS; days++) {
        tick_at(&u, days);
        ask(f, pd, se);
        pipe_usage_commit(&u);
    }
    assert_int_equal(counter_files(dir, names, 4), 2);
    uint32_t first = tick_at(&u, 0), moved = first + (uint32_t)days - 1;
    /* The day before the move was counted in the first file, and is remembered. */
    tick_at(&u, days - 2);
    ask(f, pd, se);
    tick_at(&u, days - 1);
    ask(f, pd, se);
    tick_at(&u, days - 2);
    ask(f, pd, se);
    pipe_usage_commit(&u);
    assert_int_equal(counted_in(dir, names[0], moved - 1, key), 1);
    assert_int_equal(counted_in(dir, names[1], moved - 1, key), 2);
    assert_int_equal(counted_in(dir, names[1], moved, key), 2);
    assert_int_equal(counted_in(dir, names[0], first, key), 1);
    /* No new file can be made: fill the second one until a hit is uncounted. */
    assert_int_equal(rename(dir, gone), 0);
    int last = days;
    for (; u.uncounted == 0 && last < days + 2 * (int)PIPE_USAGE_SLOTS; last++) {
        tick_at(&u, last);
        ask(f, pd, se);
        pipe_usage_commit(&u);
    }
    assert_int_equal(u.uncounted, 1);
    tick_at(&u, last - 2);   /* the last key the second file took */
    ask(f, pd, se);
    pipe_usage_commit(&u);
    assert_int_equal(u.uncounted, 2);
    assert_int_equal(counted(gone, key), u.counted);
    assert_int_equal(counted_in(gone, names[1], first + (uint32_t)last - 2, key), 1);
    pipe_usage_close(&u);
    f->st.usage = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, gone);
    assert_int_equal(system(cmd), 0);
}

/* A counter directory that cannot be written: the answers are the same,
 * the hits are counted as uncounted (and logged), and the coprocess tries a
 * new file at most once a second, not once a hit. */
static void answers_do_not_wait_for_a_broken_counter_directory(void **state)
{
    fix_t *f = *state;
    pipe_usage_t u = {.dir = "/nonexistent/ibpdns-usage", .file = {.fd = -1}};
    ibp_log_t quiet = {.level = IBP_LOG_FATAL, .ident = "test", .fd = -1};
    u.log = &quiet;
    helo(f, "3");
    const char *q = "Q\tpolkadot.dotters.network\tIN\tANY\t1\t192.0.2.1\t192.0.2.1\t89.160.20.112/28";
    pipe_state_t bare = f->st;
    f->st.usage = &u;
    char with[PIPE_OUT_CAP + 1];
    snprintf(with, sizeof with, "%s", send(f, q));
    f->st = bare;
    assert_string_equal(with, send(f, q));
    f->st.usage = &u;
    for (int i = 0; i < 100; i++)
        send(f, q);
    pipe_usage_commit(&u);
    assert_int_equal(u.counted, 0);
    assert_true(u.uncounted >= 101);
    assert_true(u.retry_at > 0);
    pipe_usage_close(&u);
    f->st.usage = NULL;
}

static void handshake_and_abi_field_counts(void **state)
{
    fix_t *f = *state;
    f->st.abi = 0;
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "FAIL\n");
    assert_string_equal(send(f, "HELO\t9"), "FAIL\n");
    assert_string_equal(send(f, "HELO"), "FAIL\n");
    helo(f, "3");
    assert_int_equal(count_lines(f->text), 1);
    assert_non_null(strstr(send(f, "Q\tdotters.network\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n"));
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tA\t1\t1.2.3.4"), "FAIL\n");
    helo(f, "1");
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tA\t1\t1.2.3.4"),
                        "DATA\tdotters.network\tIN\tA\t3600\t" ZID "\t192.96.202.175\nEND\n");
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "FAIL\n");
    helo(f, "2");
    assert_non_null(strstr(send(f, "Q\tdotters.network\tIN\tA\t1\t1.2.3.4\t127.0.0.1"), "192.96.202.175"));
}

static void soa_only_at_an_apex(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"),
        "DATA\t0\t1\tdotters.network\tIN\tSOA\t3600\t" ZID "\tdns-01.dotters.network. "
        "hostmaster.dotters.network. 1700000000 3600 600 1209600 3600\nEND\n");
    assert_string_equal(send(f, "Q\twww.dotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"), "END\n");
    assert_string_equal(send(f, "Q\tdotters.org\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"), "END\n");
    /* A service host outside every static zone is its own apex, with the
     * static zones' NS and the first of them as MNAME (issue 15). */
    assert_non_null(strstr(send(f, "Q\tpolkadot.ibp.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"),
                           "\tdns-01.dotters.network. hostmaster.polkadot.ibp.network."));
    assert_non_null(strstr(send(f, "Q\tpolkadot.ibp.network\tIN\tANY\t-1\t81.2.69.142\t0.0.0.0\t81.2.69.142/32"),
                           "\tpolkadot.ibp.network\tIN\tNS\t3600\t"));
}

static void any_and_specific_types(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    const char *any = send(f, "Q\tDotters.Network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_null(strstr(any, "\tSOA\t"));   /* Routing.ApexSoaInAny is false by default */
    assert_non_null(strstr(any, "DATA\t0\t1\tDotters.Network\tIN\tNS\t3600\t" ZID   /* the asked case */
                                "\tdns-01.dotters.network.\n"));
    assert_non_null(strstr(any, "\tIN\tMX\t3600\t" ZID "\t10\tmail.dotters.network.\n"));
    assert_non_null(strstr(any, "\tIN\tTXT\t300\t" ZID "\t\"v=spf1 -all\"\n"));
    assert_int_equal(count_lines(any), 5);
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tNS\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"),
                        "DATA\t0\t1\tdotters.network\tIN\tNS\t3600\t" ZID "\tdns-01.dotters.network.\nEND\n");
    assert_string_equal(send(f, "Q\t_sip._udp.dotters.network\tIN\tSRV\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"),
        "DATA\t0\t1\t_sip._udp.dotters.network\tIN\tSRV\t60\t" ZID "\t10\t20 5060 sip.dotters.network.\nEND\n");
    assert_string_equal(send(f, "Q\twww.dotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"),
        "DATA\t0\t1\twww.dotters.network\tIN\tCNAME\t3600\t" ZID "\tdotters.network.\nEND\n");
    assert_string_equal(send(f, "Q\tnothere.dotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n");
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tTYPE65\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n");
}

/* Routing.ApexSoaInAny true (BEHAVIOR §2's former default): ANY at an apex
 * carries the SOA too, in the asked case, at static and host apexes. */
static void apex_soa_in_any_when_asked(void **state)
{
    (void)state;
    fix_t *g = calloc(1, sizeof *g);
    assert_non_null(g);
    fixture_build_routing("{\"ApexSoaInAny\": true}", &g->tb.buf, &g->tb.len);
    ibp_err_t err;
    if (!ibp_table_attach(g->tb.buf, g->tb.len, &g->tb.t, &err))
        fail_msg("%s", err.msg);
    g->st.table = &g->tb.t;
    helo(g, "3");
    const char *any = send(g, "Q\tDotters.Network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_non_null(strstr(any, "DATA\t0\t1\tDotters.Network\tIN\tSOA\t3600\t" ZID
                                "\tdns-01.dotters.network. hostmaster.dotters.network. "));
    assert_non_null(strstr(any, "\tIN\tNS\t3600\t" ZID "\tdns-01.dotters.network.\n"));
    any = send(g, "Q\tpolkadot.ibp.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_non_null(strstr(any, "\tpolkadot.ibp.network\tIN\tSOA\t"));
    any = send(g, "Q\twww.dotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_null(strstr(any, "\tSOA\t"));   /* not an apex */
    free(g->tb.buf);
    free(g);
}

static void apex_soa_in_any_can_be_left_out(void **state)
{
    (void)state;
    fix_t *g = calloc(1, sizeof *g);
    assert_non_null(g);
    fixture_build_routing("{\"ApexSoaInAny\": false}", &g->tb.buf, &g->tb.len);
    ibp_err_t err;
    if (!ibp_table_attach(g->tb.buf, g->tb.len, &g->tb.t, &err))
        fail_msg("%s", err.msg);
    g->st.table = &g->tb.t;
    helo(g, "3");
    /* ANY at an apex: everything but the SOA, as IBP's node answers */
    const char *any = send(g, "Q\tdotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_null(strstr(any, "\tSOA\t"));
    assert_non_null(strstr(any, "\tIN\tNS\t3600\t" ZID "\tdns-01.dotters.network.\n"));
    assert_non_null(strstr(any, "DATA\t0\t1\tdotters.network\tIN\tA\t3600\t" ZID "\t192.96.202.175\n"));
    any = send(g, "Q\tpolkadot.ibp.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32");
    assert_null(strstr(any, "\tSOA\t"));
    assert_non_null(strstr(any, "\tpolkadot.ibp.network\tIN\tA\t30\t"));
    /* the SOA question, which PowerDNS builds the zone from, is answered as ever */
    assert_non_null(strstr(send(g, "Q\tdotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"),
                           "DATA\t0\t1\tdotters.network\tIN\tSOA\t3600\t" ZID "\tdns-01.dotters.network. "));
    assert_non_null(strstr(send(g, "Q\tpolkadot.ibp.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"),
                           "\tIN\tSOA\t"));
    free(g->tb.buf);
    free(g);
}

static void raw_acme_urls_are_never_served(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    /* No sidecar to ask here: no value, so ANY carries only the marker of a
     * name that exists (NODATA, not NXDOMAIN: unauthoritative, never served). */
    assert_string_equal(send(f, "Q\t_acme-challenge.dotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"),
                        "DATA\t0\t0\t_acme-challenge.dotters.network\tIN\tIXFR\t60\t" ZID "\t\\# 0\nEND\n");
    assert_string_equal(send(f, "Q\t_acme-challenge.dotters.network\tIN\tTXT\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n");
}

static void no_marker_without_an_auth_field(void **state)
{
    fix_t *f = *state;
    helo(f, "2");   /* ABI 1-2 records are authoritative: the marker would be served */
    assert_string_equal(send(f, "Q\t_acme-challenge.dotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4"), "END\n");
}

static void dynamic_answers_use_ecs_unless_it_is_the_remote(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    /* ECS London, resolver unlocated: Amforc, with the table's scope. */
    const char *a = send(f, "Q\tpolkadot.dotters.network\tIN\tANY\t7\t10.9.9.9\t127.0.0.1\t81.2.69.142/32");
    unsigned scope;
    char addr[64];
    assert_int_equal(sscanf(a, "DATA\t%u\t1\tpolkadot.dotters.network\tIN\tA\t30\t" ZID "\t%63s", &scope, addr), 2);
    assert_string_equal(addr, "91.90.166.200");
    assert_true(scope > 0);
    /* remote/32 means "no ECS": the remote (Linköping) decides, not the field. */
    a = send(f, "Q\tpolkadot.dotters.network\tIN\tA\t7\t89.160.20.112\t127.0.0.1\t89.160.20.112/32");
    assert_non_null(strstr(a, "\tIN\tA\t30\t"));
    assert_null(strstr(a, "AAAA"));
    assert_string_equal(send(f, "Q\tpolkadot.dotters.network\tIN\tAAAA\t7\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n");
}

/* /route and `ibpdns-table lookup` promise the coprocess's answer: for ECS
 * 0.0.0.0/0 they once said scope 7 and resolver-location where the
 * coprocess (which takes /0 as no ECS) answered scope 31. */
static void explanations_agree_with_the_coprocess(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    static const char *const cases[][2] = {
        {"81.2.69.142", "0.0.0.0/0"}, {"81.2.69.142", "::/0"}, {"81.2.69.142", "81.2.69.142/32"},
        {"10.9.9.9", "81.2.69.0/24"}, {"81.2.69.160", "10.0.0.0/8"}, {"81.2.69.142%eth0", "0.0.0.0/0"},
        {"2001:218::1", "2001:218::/32"}, {"::ffff:81.2.69.142", "0.0.0.0/0"},
        {"89.160.20.112", "89.160.20.0/25"}, {"127.0.0.1", "0.0.0.0/0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "Q\tpolkadot.dotters.network\tIN\tA\t7\t%s\t127.0.0.1\t%s",
                 cases[i][0], cases[i][1]);
        unsigned scope = 0;
        char addr[64] = "";
        sscanf(send(f, line), "DATA\t%u\t1\tpolkadot.dotters.network\tIN\tA\t30\t" ZID "\t%63s",
               &scope, addr);
        ibp_client_t c;
        assert_true(ibp_explain_client(cases[i][0], cases[i][1], &c));
        json_t *why = ibp_explain_lookup(&f->tb.t, "polkadot.dotters.network", 0, cases[i][0],
                                         cases[i][1], &c, NULL, NULL);
        json_t *first = json_array_get(json_object_get(why, "answers"), 0);
        const char *said = first ? json_string_value(json_object_get(first, "address")) : "";
        if ((unsigned)json_integer_value(json_object_get(why, "scope")) != scope || strcmp(said, addr))
            fail_msg("%s / %s: coprocess %s scope %u, explanation %s scope %lld", cases[i][0],
                     cases[i][1], addr, scope, said,
                     (long long)json_integer_value(json_object_get(why, "scope")));
        json_decref(why);
    }
}

static void hostile_lines_fail_and_do_not_shift_answers(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    const char *good = "Q\tdotters.network\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32";
    static char expect[PIPE_OUT_CAP + 1];
    snprintf(expect, sizeof expect, "%s", send(f, good));
    static char big[8192];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "Q\t", 2);
    const char *bad[] = {"", "Q", "Q\tdotters.network\tIN\tA\tseven\t1.2.3.4\t1.2.3.4\t1.2.3.4/32",
                         "Q\tdotters.network\tCH\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32",
                         "Q\tdotters.network\tIN\tA\t1\tnot-an-ip\t1.2.3.4\t1.2.3.4/32",
                         "Q\tdotters.network\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/99",
                         "Q\t\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32",
                         "Q\tdotters.network\t\tIN\tA\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32",
                         "AXFR", "AXFR\t12345", "CMD\tstatus", "GARBAGE\tx", big,
                         "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(send(f, bad[i]), "FAIL\n");
        assert_string_equal(send(f, good), expect);
    }
    assert_string_equal(send_len(f, "Q\tdotters.network\0\tIN\tA", 24), "FAIL\n");
    /* A broken SOA question gets an empty answer: FAIL there stalls PowerDNS. */
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tSOA\tx"), "END\n");
    assert_string_equal(send(f, good), expect);
}

static void axfr_in_both_forms(void **state)
{
    fix_t *f = *state;
    helo(f, "3");
    char a[PIPE_OUT_CAP + 1];
    snprintf(a, sizeof a, "%s", send(f, "AXFR\t" ZID));
    assert_non_null(strstr(a, "DATA\t0\t1\tdotters.network\tIN\tNS\t3600\t"));
    assert_non_null(strstr(a, "\tpolkadot.dotters.network\tIN\tA\t30\t" ZID "\t91.90.166.200\n"));
    assert_null(strstr(a, "acme"));
    assert_int_equal(strcmp(a + strlen(a) - 4, "END\n"), 0);
    helo(f, "4");
    assert_string_equal(send(f, "AXFR\t" ZID "\tdotters.network"), a);
    assert_string_equal(send(f, "AXFR\t1\tnot-a-zone.example"), "FAIL\n");
}

static void commands_only_on_abi_5(void **state)
{
    fix_t *f = *state;
    helo(f, "4");
    assert_string_equal(send(f, "CMD\tstatus"), "FAIL\n");
    helo(f, "5");
    const char *s = send(f, "CMD\tstatus");
    assert_non_null(strstr(s, "generation: 1\n"));
    assert_int_equal(strcmp(s + strlen(s) - 4, "END\n"), 0);
    s = send(f, "CMD\tlookup polkadot.dotters.network 81.2.69.142");
    assert_non_null(strstr(s, "91.90.166.200"));
    assert_non_null(strstr(send(f, "CMD\tfrobnicate"), "unknown command"));
}

/* For CMD only a line that is exactly END ends the answer: with 10 or more
 * tabs, a NUL or too many bytes, FAIL alone left `pdnsutil backend-cmd`
 * waiting until it timed out. */
static void commands_always_end_with_end(void **state)
{
    fix_t *f = *state;
    helo(f, "5");
    const char *s = send(f, "CMD\ta\tb\tc\td\te\tf\tg\th\ti\tj\tk\tl");
    assert_non_null(strstr(s, "unknown command"));
    assert_int_equal(strcmp(s + strlen(s) - 4, "END\n"), 0);
    s = send_len(f, "CMD\tstat\0us", 11);
    assert_string_equal(s, "error: the command contains a NUL byte\nEND\n");
    s = send(f, "CMD\t");
    assert_int_equal(strcmp(s + strlen(s) - 4, "END\n"), 0);
    f->out.len = 0;
    pipe_answer_overlong(&f->st, "CMD\tloo", 8, &f->out);
    f->out.buf[f->out.len] = '\0';
    assert_string_equal(f->out.buf, "error: the command is longer than any request\nEND\n");
    f->out.len = 0;
    pipe_answer_overlong(&f->st, "Q\tdotte", 8, &f->out);
    assert_int_equal(f->out.len, 5);
    assert_memory_equal(f->out.buf, "FAIL\n", 5);
}

static void without_a_table_every_question_is_empty(void **state)
{
    fix_t *f = *state;
    const ibp_table_t *saved = f->st.table;
    f->st.table = NULL;
    f->st.abi = 0;
    assert_non_null(strstr(send(f, "HELO\t3"), "no table"));
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0"), "END\n");
    assert_string_equal(send(f, "Q\tdotters.network\tIN\tANY\t1\t1.2.3.4\t1.2.3.4\t1.2.3.4/32"), "END\n");
    f->st.table = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_abi_field_counts),
        cmocka_unit_test(answered_dynamic_records_are_counted_after_the_write),
        cmocka_unit_test(answers_do_not_wait_for_a_broken_counter_directory),
        cmocka_unit_test(the_remembered_slot_serves_only_its_key_and_day),
        cmocka_unit_test(a_left_file_takes_its_remembered_slots_with_it),
        cmocka_unit_test(soa_only_at_an_apex),
        cmocka_unit_test(any_and_specific_types),
        cmocka_unit_test(apex_soa_in_any_when_asked),
        cmocka_unit_test(apex_soa_in_any_can_be_left_out),
        cmocka_unit_test(raw_acme_urls_are_never_served),
        cmocka_unit_test(no_marker_without_an_auth_field),
        cmocka_unit_test(dynamic_answers_use_ecs_unless_it_is_the_remote),
        cmocka_unit_test(explanations_agree_with_the_coprocess),
        cmocka_unit_test(hostile_lines_fail_and_do_not_shift_answers),
        cmocka_unit_test(axfr_in_both_forms),
        cmocka_unit_test(commands_only_on_abi_5),
        cmocka_unit_test(commands_always_end_with_end),
        cmocka_unit_test(without_a_table_every_question_is_empty),
    };
    return cmocka_run_group_tests(tests, setup, fixture_table_free);
}
