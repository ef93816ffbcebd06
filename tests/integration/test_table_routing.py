#!/usr/bin/python3
"""ibpdns-table: routing rules of BEHAVIOR §3 and the health rule of
IBP-NODE §5.3, on small synthetic configs.

The base fixture: four members, each with IPv4 and IPv6, serving services
SvcA (hosts a.example.net, rpc.example.net/a) and SvcB (b.example.net,
rpc.example.net/b). Seen from London (81.2.69.142, GB) they are, nearest
first: Alpha (London), Bravo (Paris), Charlie (Berlin), Delta (New York).
From Linköping (89.160.20.112, SE): Charlie, Bravo/Alpha, Delta."""

import ipaddress
import json
import os

import ibptest
from ibptest import (answer_members, check, domain_group, endpoint_group, eq, lookup, member,
                     members, members_from, result, service, site_group, skipped, snapshot,
                     static_record)

LONDON = '81.2.69.142'         # GB, 51.5142 -0.0931
SWEDEN = '89.160.20.112'       # SE, 58.4167 15.6167
HOSTS = ('a.example.net', 'b.example.net', 'rpc.example.net')

BASE_MEMBERS = members(
    Alpha=member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1', services=['SvcA', 'SvcB']),
    Bravo=member(48.8566, 2.3522, '192.0.2.2', '2001:db8::2', services=['SvcA', 'SvcB']),
    Charlie=member(52.5200, 13.4050, '192.0.2.3', '2001:db8::3', services=['SvcA', 'SvcB']),
    Delta=member(40.7128, -74.0060, '192.0.2.4', '2001:db8::4', services=['SvcA', 'SvcB']),
)
BASE_SERVICES = {
    'SvcA': service('wss://a.example.net', 'wss://rpc.example.net/a'),
    'SvcB': service('wss://b.example.net', 'wss://rpc.example.net/b'),
}
BASE_STATIC = [static_record('example.net', 'NS', 'ns1.example.net.'),
               static_record('ns1.example.net', 'A', '192.0.2.53')]


def build(members_obj=BASE_MEMBERS, services_obj=BASE_SERVICES, results=None, source=None,
          routing=None, overrides=None):
    ws = ibptest.Workspace()
    cfg = ws.node_config(members_obj, services_obj, BASE_STATIC, routing=routing,
                         overrides=overrides)
    table = ws.build_ok(cfg, results=results, source=source)
    build.keep.append(ws)      # keep the directory until the script exits
    return table


build.keep = []


def first(table, host, ip=LONDON, qtype='A', **kw):
    """The first answered member (None if no answer) and the whole result."""
    res = lookup(table, host, ip, qtype, **kw)
    names = answer_members(res)
    return (names[0] if names else None), res


def expect(table, host, qtype, want, how='nearest', ip=LONDON, offline=(), what=''):
    """host/qtype from ip answers want first, with how; the members in
    offline (and only they) are skipped as offline."""
    got, res = first(table, host, ip, qtype)
    ctx = '%s%s %s from %s' % (what + ': ' if what else '', host, qtype, ip)
    eq(got, want, ctx + ' answer')
    eq(res['how'], how, ctx + ' how')
    off = sorted(m for m, s in skipped(res).items() if s == 'offline')
    eq(off, sorted(offline), ctx + ' candidates skipped "offline"')
    return res


# ---- health (IBP-NODE §5.3) ------------------------------------------------------

def test_health_baseline_without_results():
    t = build()
    for h in HOSTS:
        for q in ('A', 'AAAA'):
            res = expect(t, h, q, 'Alpha')
            eq(sorted(m['member'] for m in res['candidates']),
               ['Alpha', 'Bravo', 'Charlie', 'Delta'], h + ' candidates')


def test_health_site_failure_applies_to_all_hosts():
    t = build(results=snapshot(site=[site_group([result('Alpha', False),
                                                  result('Bravo', True)])]))
    for h in HOSTS:
        expect(t, h, 'A', 'Bravo', offline=['Alpha'])
        expect(t, h, 'AAAA', 'Alpha')          # IPv6 is independent


def test_health_site_failure_ipv6_group_counts_not_result_flag():
    # Group IsIPv6 true, result IsIPv6 false: the group decides (AAAA only).
    t = build(results=snapshot(site=[site_group([result('Alpha', False, ipv6=False)],
                                                ipv6=True)]))
    for h in HOSTS:
        expect(t, h, 'AAAA', 'Bravo', offline=['Alpha'])
        expect(t, h, 'A', 'Alpha')
    # Group IsIPv6 false, result IsIPv6 true: A only.
    t = build(results=snapshot(site=[site_group([result('Alpha', False, ipv6=True)],
                                                ipv6=False)]))
    for h in HOSTS:
        expect(t, h, 'A', 'Bravo', offline=['Alpha'])
        expect(t, h, 'AAAA', 'Alpha')


def test_health_domain_failure_applies_to_that_host_only():
    t = build(results=snapshot(domain=[domain_group('a.example.net', [result('Alpha', False)])]))
    expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'])
    expect(t, 'a.example.net', 'AAAA', 'Alpha')
    expect(t, 'b.example.net', 'A', 'Alpha')
    expect(t, 'rpc.example.net', 'A', 'Alpha')


def test_health_endpoint_failure_removes_member_from_host():
    # Any failed RpcUrl of rpc.example.net (here /b) removes Alpha from the
    # whole host, the /a path included; a.example.net and b.example.net stay.
    t = build(results=snapshot(endpoint=[
        endpoint_group('rpc.example.net', 'wss://rpc.example.net/b', [result('Alpha', False)]),
        endpoint_group('rpc.example.net', 'wss://rpc.example.net/a', [result('Alpha', True)])]))
    expect(t, 'rpc.example.net', 'A', 'Bravo', offline=['Alpha'])
    expect(t, 'rpc.example.net', 'AAAA', 'Alpha')
    expect(t, 'a.example.net', 'A', 'Alpha')
    expect(t, 'b.example.net', 'A', 'Alpha')
    # IPv6 endpoint group: AAAA only.
    t = build(results=snapshot(endpoint=[
        endpoint_group('b.example.net', 'wss://b.example.net', [result('Alpha', False)],
                       ipv6=True)]))
    expect(t, 'b.example.net', 'AAAA', 'Bravo', offline=['Alpha'])
    expect(t, 'b.example.net', 'A', 'Alpha')
    expect(t, 'a.example.net', 'AAAA', 'Alpha')


def test_health_names_match_case_insensitively():
    t = build(results=snapshot(
        site=[site_group([result('aLPHA', False)])],
        domain=[domain_group('B.Example.NET', [result('BRAVO', False)])],
        endpoint=[endpoint_group('RPC.EXAMPLE.NET', 'wss://RPC.example.net/a',
                                 [result('charlie', False)])]))
    expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'])
    expect(t, 'b.example.net', 'A', 'Charlie', offline=['Alpha', 'Bravo'])
    expect(t, 'rpc.example.net', 'A', 'Bravo', offline=['Alpha', 'Charlie'])


def test_health_any_failed_check_counts_and_others_stay_online():
    # Alpha passes one check and fails another: offline. Zulu (no such
    # member) failing changes nothing; members the snapshot does not mention
    # are online.
    t = build(results=snapshot(site=[
        site_group([result('Alpha', True), result('Zulu', False)], check='ping'),
        site_group([result('Alpha', False), result('Bravo', True)], check='http')]))
    expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'])
    t = build(results=snapshot(site=[site_group([result('Zulu', False),
                                                 result('Alpha', True)])]))
    expect(t, 'a.example.net', 'A', 'Alpha')


def test_health_empty_snapshot_is_permissive():
    for snap in ({}, snapshot()):
        t = build(results=snap)
        for h in HOSTS:
            expect(t, h, 'A', 'Alpha', what='snapshot %r' % (snap,))
            expect(t, h, 'AAAA', 'Alpha', what='snapshot %r' % (snap,))


def test_health_results_source():
    down = snapshot(site=[site_group([result('Alpha', False)])])
    # IBP-NODE §5.2: a snapshot whose X-IBP-Results-Source is "local"
    # (trimmed, any case) is ignored: everybody online.
    for src in ('local', 'LOCAL', ' Local '):
        t = build(results=down, source=src)
        expect(t, 'a.example.net', 'A', 'Alpha', what='source %r' % src)
    for src in ('official', 'Official'):
        t = build(results=down, source=src)
        expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'], what='source %r' % src)
    t = build(results=down)    # no header at all: used
    expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'], what='no source')


def test_health_checktime_formats():
    # Go's monitor writes RFC 3339 with nanoseconds; offsets are RFC 3339 too.
    for ct in ('2026-04-18T10:00:00.123456789Z', '2026-04-18T12:00:00+02:00'):
        t = build(results=snapshot(site=[site_group([result('Alpha', False, checktime=ct)])]))
        expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'], what='Checktime %r' % ct)


def test_health_invalid_checktime_fails_the_build():
    for ct in ('', 'yesterday', '2026-04-18T10:00:00', '2026-13-18T10:00:00Z'):
        ws = ibptest.Workspace()
        cfg = ws.node_config(BASE_MEMBERS, BASE_SERVICES, BASE_STATIC)
        res_path = ws.write_json('monitor-results.json', snapshot(
            site=[site_group([result('Alpha', False, checktime=ct)])]))
        out = ws.fresh()
        rc, so, se, _ = ws.build(cfg, results=res_path, out=out)
        eq(rc, 1, 'Checktime %r: exit status' % ct)
        line = ibptest.one_error_line(se, 'Checktime %r' % ct)
        check('monitor-results.json' in line, 'Checktime %r: error does not name the file: %r'
              % (ct, line))
        check('Checktime' in line, 'Checktime %r: error does not name the field: %r' % (ct, line))
        check(not os.path.exists(out), 'Checktime %r: a table was written' % ct)


def test_health_keys_case_insensitive_and_unknown_keys_tolerated():
    snap = {'siteresults': [{'checkname': 'ping', 'isipv6': False, 'Extra': 1, 'results': [
        {'status': False, 'membername': 'Alpha', 'checktime': ibptest.CHECKTIME,
         'Unknown': [1, 2]}]}], 'domainResults': [], 'ENDPOINTRESULTS': [], 'Other': {}}
    t = build(results=snap)
    expect(t, 'a.example.net', 'A', 'Bravo', offline=['Alpha'])


def test_health_results_decode_like_go():
    # The monitor's JSON is decoded as Go's encoding/json would: a missing or
    # null Checktime is the zero time (no error), a missing Status is false;
    # a wrong type fails the build (the snapshot would be kept unchanged).
    for change in ({'Checktime': None}, {'Checktime': '0001-01-01T00:00:00Z'}):
        r = result('Alpha', False)
        r.update(change)
        expect(build(results=snapshot(site=[site_group([r])])), 'a.example.net', 'A', 'Bravo',
               offline=['Alpha'], what=repr(change))
    for drop in ('Checktime', 'Status'):
        r = result('Alpha', False)
        del r[drop]
        expect(build(results=snapshot(site=[site_group([r])])), 'a.example.net', 'A', 'Bravo',
               offline=['Alpha'], what='no ' + drop)
    ws = ibptest.Workspace()
    cfg = ws.node_config(BASE_MEMBERS, BASE_SERVICES, BASE_STATIC)
    for snap in (snapshot(site=[site_group([result('Alpha', 'false')])]), [],
                 {'SiteResults': {}}):
        out = ws.fresh()
        rc, so, se, _ = ws.build(cfg, results=snap, out=out)
        eq(rc, 1, 'results %r: exit status' % (snap,))
        ibptest.one_error_line(se, 'results %r' % (snap,))
        check(not os.path.exists(out), 'results %r: table written' % (snap,))


def test_all_candidates_offline_fail_open():
    down = snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS])])
    t = build(results=down)
    for h in HOSTS:
        res = expect(t, h, 'A', 'Alpha', how='fail-open', offline=list(BASE_MEMBERS))
        eq(res['answers'][0]['address'], '192.0.2.1', h + ' fail-open address')
        expect(t, h, 'AAAA', 'Alpha')
        expect(t, h, 'A', 'Charlie', ip=SWEDEN, how='fail-open', offline=list(BASE_MEMBERS))


def test_all_candidates_offline_policy_none():
    down = snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS])])
    t = build(results=down, routing={'AllDownPolicy': 'none'})
    for h in HOSTS:
        res = lookup(t, h, LONDON, 'A')
        eq(res['answers'], [], h + ' A answers with AllDownPolicy none')
        eq(res['how'], 'none', h + ' A how')
        expect(t, h, 'AAAA', 'Alpha')     # IPv6 still up
    # With one member up, "none" changes nothing.
    t = build(results=snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS
                                                 if m != 'Delta'])]),
              routing={'AllDownPolicy': 'none'})
    expect(t, 'a.example.net', 'A', 'Delta', offline=['Alpha', 'Bravo', 'Charlie'])


# ---- candidates (BEHAVIOR §3) -------------------------------------------------------

def all_dump_members(table):
    """Every member name that appears in any answer of the table's dump."""
    rc, out, err = ibptest.run_table('dump', table)
    eq(rc, 0, 'dump exit status (%s)' % err.strip())
    seen = set()
    for line in out.splitlines():
        d = json.loads(line)
        for a in d.get('answer') or []:
            seen.add(a['member'])
    return seen


def test_override_member_never_answered():
    mem = dict(BASE_MEMBERS)
    mem['Alpha'] = member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1',
                          services=['SvcA', 'SvcB'], override=True)
    mem = members_from(mem.items())
    t = build(mem)
    for h in HOSTS:
        for q in ('A', 'AAAA'):
            res = lookup(t, h, LONDON, q)
            eq(answer_members(res)[0], 'Bravo', '%s %s answer' % (h, q))
            eq(skipped(res).get('Alpha'), 'override', '%s %s Alpha skipped' % (h, q))
    check('Alpha' not in all_dump_members(t), 'Override member Alpha appears in the dump')
    # Even when everybody else is down (fail open skips it too).
    t = build(mem, results=snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS
                                                      if m != 'Alpha'])]))
    res = lookup(t, 'a.example.net', LONDON, 'A')
    eq(answer_members(res), ['Bravo'], 'fail-open answer with Alpha overridden')
    eq(res['how'], 'fail-open', 'how')


def test_inactive_member_never_answered():
    mem = dict(BASE_MEMBERS)
    mem['Alpha'] = member(51.5074, -0.1278, '192.0.2.1', '2001:db8::1',
                          services=['SvcA', 'SvcB'], active=0)
    t = build(members_from(mem.items()))
    for h in HOSTS:
        for q in ('A', 'AAAA'):
            res = lookup(t, h, LONDON, q)
            eq(answer_members(res)[0], 'Bravo', '%s %s answer' % (h, q))
            eq(skipped(res).get('Alpha'), 'inactive', '%s %s Alpha skipped' % (h, q))
    check('Alpha' not in all_dump_members(t), 'inactive member Alpha appears in the dump')


def test_member_without_address_of_family():
    mem = dict(BASE_MEMBERS)
    mem['Alpha'] = member(51.5074, -0.1278, '192.0.2.1', '', services=['SvcA', 'SvcB'])
    mem['Bravo'] = member(48.8566, 2.3522, '', '2001:db8::2', services=['SvcA', 'SvcB'])
    t = build(members_from(mem.items()))
    for h in HOSTS:
        res = lookup(t, h, LONDON, 'AAAA')
        eq(answer_members(res), ['Bravo'], h + ' AAAA answer')
        eq(skipped(res).get('Alpha'), 'no-address', h + ' AAAA Alpha skipped')
        eq(skipped(res).get('Bravo'), None, h + ' AAAA Bravo skipped')
        res = lookup(t, h, LONDON, 'A')
        eq(answer_members(res), ['Alpha'], h + ' A answer')
        eq(skipped(res).get('Bravo'), 'no-address', h + ' A Bravo skipped')
        eq(skipped(res).get('Alpha'), None, h + ' A Alpha skipped')
        res = lookup(t, h, '89.160.20.112', 'A')
        eq(answer_members(res), ['Charlie'], h + ' A answer from Sweden')


def test_ties_go_to_first_key_in_byte_order():
    # Same coordinates. "Zulu" < "alpha" < "bravo" in byte order (uppercase
    # first), whatever the order of the file.
    mem = members_from([
        ('bravo', member(48.8566, 2.3522, '192.0.2.12', '2001:db8::12', services=['SvcA'])),
        ('alpha', member(48.8566, 2.3522, '192.0.2.11', '2001:db8::11', services=['SvcA'])),
        ('Zulu', member(48.8566, 2.3522, '192.0.2.13', '2001:db8::13', services=['SvcA'])),
        ('Far', member(-33.9, 151.2, '192.0.2.14', '2001:db8::14', services=['SvcA'])),
    ])
    t = build(mem)
    for q in ('A', 'AAAA'):
        for ip in (LONDON, SWEDEN, '2a02:d000::1'):
            eq(first(t, 'a.example.net', ip, q)[0], 'Zulu', 'tie %s from %s' % (q, ip))
    t = build(mem, routing={'AnswersPerFamily': 3})
    eq(answer_members(lookup(t, 'a.example.net', LONDON, 'A')), ['Zulu', 'alpha', 'bravo'],
       'three tied members, in key order')
    # Zulu down: the next key.
    t = build(mem, results=snapshot(site=[site_group([result('Zulu', False)])]))
    eq(first(t, 'a.example.net', LONDON, 'A')[0], 'alpha', 'tie with Zulu offline')


def test_answers_per_family_two():
    t = build(routing={'AnswersPerFamily': 2})
    for h in HOSTS:
        for q in ('A', 'AAAA'):
            res = lookup(t, h, LONDON, q)
            eq(answer_members(res), ['Alpha', 'Bravo'], '%s %s two nearest' % (h, q))
            d = [a['distance_km'] for a in res['answers']]
            check(d[0] <= d[1], '%s %s: not nearest first: %r' % (h, q, d))
        eq(answer_members(lookup(t, h, SWEDEN, 'A')), ['Charlie', 'Alpha']
           if ibptest.haversine(58.4167, 15.6167, 51.5074, -0.1278)
           < ibptest.haversine(58.4167, 15.6167, 48.8566, 2.3522) else ['Charlie', 'Bravo'],
           h + ' two nearest from Sweden')
    t = build(routing={'AnswersPerFamily': 2},
              results=snapshot(site=[site_group([result('Alpha', False)])]))
    res = lookup(t, 'a.example.net', LONDON, 'A')
    eq(answer_members(res), ['Bravo', 'Charlie'], 'two nearest healthy with Alpha down')
    eq([a['address'] for a in res['answers']], ['192.0.2.2', '192.0.2.3'], 'their addresses')
    t = build(routing={'AnswersPerFamily': 8})
    eq(answer_members(lookup(t, 'a.example.net', LONDON, 'AAAA')),
       ['Alpha', 'Bravo', 'Charlie', 'Delta'], 'AnswersPerFamily 8 with 4 members')


def test_ttl_from_routing_config():
    eq(lookup(build(), 'a.example.net', LONDON)['ttl'], 30, 'default TTL')
    eq(lookup(build(routing={'Ttl': 120}), 'a.example.net', LONDON)['ttl'], 120, 'Routing.Ttl')


# ---- country overrides (IBP-NODE §2.5, §4.3 step 2) ---------------------------------

OVERRIDES = {
    'a.example.net': {'GB': {'memberName': 'Delta', 'ipv4': '', 'ipv6': ''}},
    'b.example.net': {'GB': {'memberName': '', 'ipv4': '198.51.100.7', 'ipv6': ''}},
}


def test_override_member_name():
    t = build(overrides=OVERRIDES)
    for q, addr in (('A', '192.0.2.4'), ('AAAA', '2001:db8::4')):
        res = lookup(t, 'a.example.net', LONDON, q)
        eq([(a['member'], a['address']) for a in res['answers']], [('Delta', addr)],
           'a.example.net %s override for GB' % q)
        eq(res['how'], 'override', 'how')
        check(res['scope'] > 0, 'override scope %r' % res['scope'])
    # Other countries and other hosts: geo.
    expect(t, 'a.example.net', 'A', 'Charlie', ip=SWEDEN)
    expect(t, 'rpc.example.net', 'A', 'Alpha')


def test_override_member_offline_falls_back_to_geo():
    t = build(overrides=OVERRIDES, results=snapshot(site=[site_group([result('Delta', False)])]))
    expect(t, 'a.example.net', 'A', 'Alpha', offline=['Delta'])
    res = lookup(t, 'a.example.net', LONDON, 'AAAA')      # Delta's IPv6 is up
    eq(answer_members(res), ['Delta'], 'AAAA override')
    eq(res['how'], 'override', 'AAAA how')


def test_unnamed_member_is_never_answered():
    """IBP never returns a member whose Details.Name is empty (IBP-NODE §4.3
    step 7): not by geo, and not when a country override names it by key."""
    mem = dict(BASE_MEMBERS)
    mem['Alpha'] = dict(mem['Alpha'], Details={'Name': ''})
    t = build(members_obj=mem, overrides={'a.example.net': {'GB': {'memberName': 'Alpha'}}})
    res = lookup(t, 'a.example.net', LONDON, 'A')
    eq(answer_members(res), ['Bravo'], 'nearest named member')
    eq(res['how'], 'nearest', 'override to an unnamed member falls back to geo')
    check({'member': '', 'skipped': 'unnamed'} in res['candidates'],
          'unnamed skip reason: %r' % res['candidates'])


def test_override_address():
    t = build(overrides=OVERRIDES)
    res = lookup(t, 'b.example.net', LONDON, 'A')
    eq([(a['member'], a['address']) for a in res['answers']], [('override:GB', '198.51.100.7')],
       'b.example.net A override for GB')
    eq(res['how'], 'override', 'how')
    # No ipv6 in the entry: AAAA is geo-routed.
    expect(t, 'b.example.net', 'AAAA', 'Alpha')
    expect(t, 'b.example.net', 'A', 'Charlie', ip=SWEDEN)
    # The address path works even with every member down (IBP-NODE §4.3).
    t = build(overrides=OVERRIDES,
              results=snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS])]))
    res = lookup(t, 'b.example.net', LONDON, 'A')
    eq([(a['member'], a['address']) for a in res['answers']], [('override:GB', '198.51.100.7')],
       'address override with all members down')


def test_override_keys_normalized_and_names_case_insensitive():
    # Domains are lowercased and country codes uppercased on load; memberName
    # matches the key or Details.Name, case-insensitively.
    mem = dict(BASE_MEMBERS)
    mem['dny'] = member(40.7128, -74.0060, '192.0.2.40', '2001:db8::40',
                        services=['SvcA', 'SvcB'], name='Delta New York')
    mem = members_from(mem.items())
    ov = {'A.Example.NET': {'gb': {'memberName': 'delta', 'ipv4': '', 'ipv6': ''}},
          'b.example.net': {'Gb': {'memberName': 'DELTA NEW YORK', 'ipv4': '', 'ipv6': ''}}}
    t = build(mem, overrides=ov)
    res = lookup(t, 'a.example.net', LONDON, 'A')
    eq([a['address'] for a in res['answers']], ['192.0.2.4'], 'override by key, any case')
    eq(res['how'], 'override', 'how')
    res = lookup(t, 'b.example.net', LONDON, 'A')
    eq([a['address'] for a in res['answers']], ['192.0.2.40'], 'override by Details.Name')
    eq(res['how'], 'override', 'how')


def test_override_member_not_a_candidate_falls_back_to_geo():
    mem = dict(BASE_MEMBERS)
    mem['Echo'] = member(35.6762, 139.6503, '192.0.2.5', '2001:db8::5', services=['SvcB'])
    t = build(members_from(mem.items()),
              overrides={'a.example.net': {'GB': {'memberName': 'Echo', 'ipv4': '',
                                                  'ipv6': ''}}})
    expect(t, 'a.example.net', 'A', 'Alpha')


# ---- client address and location ---------------------------------------------------

def test_unlocated_client_spread():
    t = build()
    healthy = set(BASE_MEMBERS)
    for ip in ('10.1.2.3', '127.0.0.1', '192.168.7.9'):
        for q in ('A', 'AAAA'):
            res = lookup(t, 'a.example.net', ip, q)
            eq(res['how'], 'spread', '%s %s how' % (ip, q))
            eq(res['location'], None, '%s location' % ip)
            eq(len(res['answers']), 1, '%s %s answers' % (ip, q))
            check(res['answers'][0]['member'] in healthy,
                  '%s %s: %r is not a healthy candidate' % (ip, q, res['answers']))
            check(res['scope'] > 0, '%s %s: scope %r' % (ip, q, res['scope']))
    # Stable within a /24.
    base = answer_members(lookup(t, 'a.example.net', '10.1.2.3'))
    for ip in ('10.1.2.0', '10.1.2.3', '10.1.2.77', '10.1.2.255'):
        eq(answer_members(lookup(t, 'a.example.net', ip)), base, 'spread for %s' % ip)


def test_unlocated_clients_spread_over_healthy_candidates_only():
    mem = dict(BASE_MEMBERS)
    mem['Echo'] = member(0.0, 0.0, '192.0.2.5', '2001:db8::5', services=['SvcA'], active=0)
    mem['Foxtrot'] = member(0.1, 0.1, '192.0.2.6', '2001:db8::6', services=['SvcA'],
                            override=True)
    t = build(members_from(mem.items()),
              results=snapshot(site=[site_group([result('Alpha', False)])]))
    ips = ['10.%d.%d.1' % (i // 8, i * 37 % 256) for i in range(48)]
    got = ibptest.pmap(lambda ip: lookup(t, 'a.example.net', ip, 'A'), ips)
    seen = set()
    for ip, res in zip(ips, got):
        eq(res['how'], 'spread', ip + ' how')
        check(answer_members(res)[0] in ('Bravo', 'Charlie', 'Delta'),
              '%s: spread answered %r (offline, inactive or override)' % (ip, res['answers']))
        seen.add(answer_members(res)[0])
    # A stable hash over 48 prefixes does not always pick the same member
    # (IBP's fixed point (0,0) would).
    check(len(seen) >= 2, 'spread picked only %r for 48 different /24s' % seen)


def test_spread_with_all_down():
    down = snapshot(site=[site_group([result(m, False) for m in BASE_MEMBERS])])
    t = build(results=down)
    res = lookup(t, 'a.example.net', '10.1.2.3', 'A')
    eq(len(res['answers']), 1, 'fail-open spread answers')
    check(res['answers'][0]['member'] in BASE_MEMBERS, 'spread answer %r' % res['answers'])
    t = build(results=down, routing={'AllDownPolicy': 'none'})
    res = lookup(t, 'a.example.net', '10.1.2.3', 'A')
    eq(res['answers'], [], 'AllDownPolicy none, unlocated client')


def test_ecs_unlocated_prefix_uses_resolver_location():
    t = build()
    res = lookup(t, 'a.example.net', LONDON, 'A', ecs='10.1.2.0/24')
    eq(answer_members(res), ['Alpha'], 'unlocated ECS, London resolver')
    eq(res['how'], 'resolver-location', 'how')
    check(res['scope'] > 0, 'scope %r' % res['scope'])
    res = lookup(t, 'a.example.net', SWEDEN, 'AAAA', ecs='10.1.2.0/24')
    eq(answer_members(res), ['Charlie'], 'unlocated ECS, Swedish resolver')
    eq(res['how'], 'resolver-location', 'how')


def test_ecs_located_prefix_wins_over_resolver():
    t = build()
    res = lookup(t, 'a.example.net', LONDON, 'A', ecs='89.160.20.128/25')
    eq(answer_members(res), ['Charlie'], 'Swedish ECS prefix, London resolver')
    eq(res['how'], 'nearest', 'how')
    eq(res['location']['country'], 'SE', 'location from the ECS prefix')
    res = lookup(t, 'a.example.net', SWEDEN, 'A', ecs='81.2.69.142/32')
    eq(answer_members(res), ['Alpha'], 'London ECS /32, Swedish resolver')
    res = lookup(t, 'a.example.net', '10.9.9.9', 'A', ecs='2a02:d3c0::/32')   # GB
    eq(answer_members(res), ['Alpha'], 'IPv6 ECS prefix in GB')
    res = lookup(t, 'a.example.net', '10.9.9.9', 'A', ecs='10.1.2.0/24')
    eq(res['how'], 'spread', 'nobody located')


def test_scope_positive_for_client_dependent_answers():
    t = build()
    for ip in (LONDON, SWEDEN, '2a02:d3c0::1', '175.16.199.1'):
        for q in ('A', 'AAAA'):
            res = lookup(t, 'a.example.net', ip, q)
            check(0 < res['scope'] <= (32 if '.' in ip else 128),
                  '%s %s: scope %r' % (ip, q, res['scope']))


def test_embedded_ipv4_clients():
    t = build()
    for v4, member_want in ((LONDON, 'Alpha'), (SWEDEN, 'Charlie')):
        a, b, c, d = (int(x) for x in v4.split('.'))
        hx = '%02x%02x:%02x%02x' % (a, b, c, d)
        inv = '%04x:%04x' % (0xffff - (a << 8 | b), 0xffff - (c << 8 | d))
        forms = [('::ffff:' + v4, 96), ('::ffff:0:' + hx, 96), ('64:ff9b::' + hx, 96),
                 ('2002:%s::1' % hx, 16), ('2001:0:4136:e378:8000:63bf:' + inv, 96)]
        for q in ('A', 'AAAA'):
            ref = lookup(t, 'a.example.net', v4, q)
            eq(answer_members(ref), [member_want], '%s %s' % (v4, q))
            for ip, base in forms:
                res = lookup(t, 'a.example.net', ip, q)
                eq(answer_members(res), [member_want], '%s %s (carries %s)' % (ip, q, v4))
                eq(res['how'], 'nearest', ip + ' how')
                eq(res['scope'], base + ref['scope'],
                   '%s %s scope (%d + IPv4 scope %d)' % (ip, q, base, ref['scope']))


def test_spread_scope_is_sound():
    t = build()
    for ip in ('10.1.2.3', '127.0.0.1', '172.16.5.4', 'fd00:1:2::3', '2001:db8:77::1'):
        for q in ('A', 'AAAA'):
            res = lookup(t, 'a.example.net', ip, q)
            eq(res['how'], 'spread', '%s %s how' % (ip, q))
            prefix = ipaddress.ip_network('%s/%d' % (ip, res['scope']), strict=False)
            for other in (prefix.network_address, prefix.broadcast_address):
                eq(answer_members(lookup(t, 'a.example.net', str(other), q)),
                   answer_members(res), '%s %s: %s is inside scope /%d'
                   % (ip, q, other, res['scope']))


def test_service_hosts_from_rpc_urls():
    # Hosts are lowercased, ports and paths dropped; inactive services add no host.
    svc = {'SvcA': service('wss://A.Example.NET:443/ws', 'https://rpc.example.net:8443/a'),
           'SvcB': service('wss://b.example.net', active=0)}
    t = build(services_obj=svc)
    expect(t, 'a.example.net', 'A', 'Alpha')
    expect(t, 'rpc.example.net', 'A', 'Alpha')
    res = lookup(t, 'b.example.net', LONDON)
    eq(res['answers'], [], 'host of an inactive service')
    eq(res['candidates'], [], 'candidates of an inactive service host')


def test_unknown_name_and_non_service_name():
    t = build()
    res = lookup(t, 'nope.example.org', LONDON)
    eq(res['answers'], [], 'unknown name answers')
    eq(res['zone'], None, 'unknown name zone')
    res = lookup(t, 'ns1.example.net', LONDON)
    eq(res['answers'], [], 'static-only name answers')
    eq(res['zone'], 'example.net', 'static-only name zone')
    eq([(r['type'], r['content']) for r in res['records']], [('A', '192.0.2.53')],
       'static records')
    res = lookup(t, 'x.a.example.net', LONDON)     # no parent-domain match
    eq(res['answers'], [], 'name under a service host')


if __name__ == '__main__':
    ibptest.main(globals())
