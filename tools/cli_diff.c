/* ibpdns-table diff OLD NEW: which clients move between two tables
 * (lib/compile/ibp_table_diff.h), as JSON or, with --text, for a person. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ibp_table.h"
#include "ibp_table_diff.h"

static double share(uint64_t part, uint64_t whole)
{
    return whole ? (double)part / (double)whole : 0.0;
}

static double share128(ibp_u128 part, ibp_u128 whole)
{
    return whole ? (double)part / (double)whole : 0.0;
}

static json_t *names_json(const ibp_diff_names_t *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, json_string(l->v[i]));
    return arr;
}

static json_t *move_json(const ibp_diff_move_t *m)
{
    char moved[48], located[48];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:s, s:s, s:f}",
                     "host", m->host, "type", m->family ? "AAAA" : "A",
                     "clients", m->client_v6 ? "ipv6" : "ipv4", "from", m->from, "to", m->to,
                     "networks", (json_int_t)m->moved.networks,
                     "located_networks", (json_int_t)m->located->networks,
                     "network_share", share(m->moved.networks, m->located->networks),
                     "addresses", ibp_u128_text(m->moved.addresses, moved, sizeof moved),
                     "located_addresses", ibp_u128_text(m->located->addresses, located, sizeof located),
                     "address_share", share128(m->moved.addresses, m->located->addresses));
}

static json_t *diff_json(const char *old_path, const char *new_path, const ibp_diff_t *d)
{
    json_t *moves = json_array();
    for (size_t i = 0; i < d->n_moves; i++)
        json_array_append_new(moves, move_json(&d->moves[i]));
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}",
                     "old", old_path, "new", new_path, "moves", moves,
                     "new_hosts", names_json(&d->new_hosts), "gone_hosts", names_json(&d->gone_hosts),
                     "new_members", names_json(&d->new_members),
                     "gone_members", names_json(&d->gone_members),
                     "new_zones", names_json(&d->new_zones), "gone_zones", names_json(&d->gone_zones),
                     "one_sided_policies", (json_int_t)d->one_sided_policies);
}

static void print_names(const char *what, const ibp_diff_names_t *l)
{
    if (!l->n)
        return;
    printf("%s:", what);
    for (size_t i = 0; i < l->n; i++)
        printf(" %s", l->v[i]);
    putchar('\n');
}

/* The table holds no country per geo class, so the text names none. */
static void print_text(const ibp_diff_t *d)
{
    for (size_t i = 0; i < d->n_moves; i++) {
        const ibp_diff_move_t *m = &d->moves[i];
        printf("%s %s: %.1f %% of located %s networks %s \u2192 %s (%.3g %% of their addresses)\n",
               m->host, m->family ? "AAAA" : "A", 100 * share(m->moved.networks, m->located->networks),
               m->client_v6 ? "IPv6" : "IPv4", m->from, m->to,
               100 * share128(m->moved.addresses, m->located->addresses));
    }
    if (!d->n_moves)
        puts("no client moves");
    print_names("new hosts", &d->new_hosts);
    print_names("gone hosts", &d->gone_hosts);
    print_names("new members", &d->new_members);
    print_names("gone members", &d->gone_members);
    print_names("new zones", &d->new_zones);
    print_names("gone zones", &d->gone_zones);
    if (d->one_sided_policies)
        printf("%zu host families answered by one table only\n", d->one_sided_policies);
}

/* Opened as `verify` does: validated whole and its derived parts re-derived. */
static bool open_checked(const char *path, ibp_table_t *t)
{
    ibp_err_t err;
    if (!ibp_table_open(path, t, &err))
        return cli_fail("%s", err.msg), false;
    if (!ibp_table_check_derived(t, &err)) {
        cli_fail("%s: %s", path, err.msg);
        ibp_table_close(t);
        return false;
    }
    return true;
}

int cli_diff(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    bool text = false;
    size_t n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text"))
            text = true;
        else if (argv[i][0] != '-' && n_paths < 2)
            paths[n_paths++] = argv[i];
        else
            return cli_usage();
    }
    if (n_paths != 2)
        return cli_usage();
    ibp_table_t old_t, new_t;
    if (!open_checked(paths[0], &old_t))
        return 2;
    if (!open_checked(paths[1], &new_t)) {
        ibp_table_close(&old_t);
        return 2;
    }
    ibp_diff_t d;
    ibp_err_t err;
    int rc = 0;
    if (!ibp_table_diff(&old_t, &new_t, &d, &err)) {
        rc = 2;
        cli_fail("%s vs %s: %s", paths[0], paths[1], err.msg);
    } else {
        if (text)
            print_text(&d);
        else
            cli_print_json(diff_json(paths[0], paths[1], &d), false);
        ibp_table_diff_free(&d);
        if (fflush(stdout) != 0)
            rc = cli_fail("writing the diff failed");
    }
    ibp_table_close(&new_t);
    ibp_table_close(&old_t);
    return rc;
}
