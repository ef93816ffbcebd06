#!/usr/bin/python3
"""The sidecar's guard (issue 17, acceptance 2): with Routing.MaxShiftPercent
a members config that moves Amforc to Sydney is held back (the table in
place stays; /status, /metrics and the log say why), a member going offline
still publishes at once (from the inputs of the table in place), and
POST /publish?force=1, with the API's token, publishes the held table. The
real IBP configs and MaxMind's City test database, served over loopback."""
import json
import os
import shutil
import subprocess
import time

import ibptest
from ibptest import check, eq
from sidecarfix import Sidecar, real

HOST = 'rpc.dotters.network'
LONDON = '81.2.69.142'
TOKEN = 'guard-token'


def members_with_amforc_at(lat, lon):
    members = json.loads(real('members_professional.json'))
    members['Amforc']['Location'].update(Latitude=lat, Longitude=lon)
    return json.dumps(members).encode()


def offline(member):
    body = ibptest.snapshot(site=[ibptest.site_group([ibptest.result(member, False)])])
    return json.dumps(body).encode()


def first(sc, ip=LONDON):
    code, _, body = sc.api('/route?name=%s&ip=%s' % (HOST, ip), token=TOKEN)
    eq(code, 200, '/route')
    r = json.loads(body)
    return r['answers'][0]['member'] if r['answers'] else None


def guard(sc):
    return sc.status()['guard']


def metric(sc, name):
    text = sc.api('/metrics', token=TOKEN)[2]
    values = [ln.split()[1] for ln in text.splitlines() if ln.startswith(name + ' ')]
    check(len(values) == 1, 'metric %s: %r' % (name, values))
    return float(values[0])


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while not fn():
        check(time.monotonic() < deadline, 'not within %.0f s: %s' % (timeout, what))
        time.sleep(0.1)


def test_a_move_is_held_health_publishes_force_accepts():
    with Sidecar(extra={'Routing': {'MaxShiftPercent': 20}}, token=TOKEN) as sc:
        eq(first(sc), 'Amforc', 'London before the move')
        gen = sc.generation()
        g = guard(sc)
        eq((g['max_shift_percent'], g['held'], g['refusals']), (20, False, 0), 'guard at start')

        # Amforc to Sydney: refused, the table in place stays.
        sc.http.set('/members.json', members_with_amforc_at(-33.87, 151.21))
        wait_for('the move held back', lambda: guard(sc)['held'], 20)
        g = guard(sc)
        eq(sc.generation(), gen, 'the held table is not published')
        eq(first(sc), 'Amforc', 'London still gets Amforc')
        w = g['last_weighed']
        check(w['shift_percent'] > 20 and 'Amforc' in w['largest'], 'status names the move: %r' % w)
        eq((g['refusals'], metric(sc, 'ibpdns_guard_held'),
            metric(sc, 'ibpdns_guard_refusals_total')), (1, 1.0, 1.0), 'status and metrics')
        check(metric(sc, 'ibpdns_guard_shift_percent') > 20, 'shift metric')
        log = [ln for ln in sc.logtext().splitlines() if 'table guard' in ln and 'not published' in ln]
        eq(len(log), 1, 'one error line: %r' % log)
        check('MaxShiftPercent 20' in log[0] and 'Amforc' in log[0] and 'force=1' in log[0],
              'the log says why and what to do: %r' % log[0])
        # The same inputs polled again are not weighed again.
        time.sleep(3)
        eq(guard(sc)['refusals'], 1, 'refusals after more polls')

        # A member going offline publishes at once, from the accepted inputs.
        sc.http.set('/results', offline('Amforc'), headers={'X-IBP-Results-Source': 'official'})
        wait_for('the offline member published', lambda: sc.generation() > gen, 10)
        check(first(sc) not in ('Amforc', None), 'London: Amforc offline')
        sc.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'official'})
        wait_for('Amforc back', lambda: first(sc) == 'Amforc', 10)
        eq(guard(sc)['held'], True, 'still held after the health changes')

        # Forcing needs the token, as every endpoint; GET is refused.
        eq(sc.api('/publish?force=1', method='POST')[0], 401, 'force without the token')
        eq(sc.api('/publish?force=1', token=TOKEN)[0], 405, 'GET /publish')
        eq(sc.api('/publish?force=yes', token=TOKEN, method='POST')[0], 400, 'force=yes')
        gen = sc.generation()
        code, _, body = sc.api('/publish?force=1', token=TOKEN, method='POST')
        eq(code, 202, 'POST /publish?force=1')
        eq(json.loads(body)['held'], True, 'the answer says a table was held')
        wait_for('the forced table published', lambda: sc.generation() > gen, 10)
        g = guard(sc)
        eq((g['held'], g['forced']), (False, 1), 'after force')
        check(first(sc) != 'Amforc', 'London no longer gets Amforc (in Sydney)')
        eq(metric(sc, 'ibpdns_guard_held'), 0.0, 'held metric after force')


def test_a_move_made_while_the_member_is_offline_is_held_too():
    """Amforc offline, then moved to Sydney: neither table has it answer
    anyone, but the guard weighs both with every member online as well, so
    the move is held rather than landing unweighed when Amforc comes back."""
    with Sidecar(extra={'Routing': {'MaxShiftPercent': 20}}, token=TOKEN) as sc:
        gen = sc.generation()
        sc.http.set('/results', offline('Amforc'), headers={'X-IBP-Results-Source': 'official'})
        wait_for('the offline member published', lambda: sc.generation() > gen, 10)
        check(first(sc) not in ('Amforc', None), 'London: Amforc offline')
        gen = sc.generation()
        sc.http.set('/members.json', members_with_amforc_at(-33.87, 151.21))
        wait_for('the move held back', lambda: guard(sc)['held'], 20)
        w = guard(sc)['last_weighed']
        check(w['shift_percent'] > 20 and 'Amforc' in w['largest'] and
              'every member online' in w['largest'], 'status names the move: %r' % w)
        eq(sc.generation(), gen, 'the held table is not published')
        # Amforc back: a health change, published from the table in place's
        # inputs: London gets Amforc in Zurich again, not the moved one.
        sc.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'official'})
        wait_for('Amforc back', lambda: first(sc) == 'Amforc', 10)
        eq(guard(sc)['held'], True, 'still held')


def test_health_tables_while_held_keep_the_old_database_and_countries():
    """While held, a new MaxMind file and a new override country come in:
    re-weighed and still held; a member going offline and back then
    publishes tables of the old database and countries, built without a
    walk, that move nobody once the member is back."""
    with Sidecar(extra={'Routing': {'MaxShiftPercent': 20}}, token=TOKEN) as sc:
        gen = sc.generation()
        first_table = os.path.join(sc.dir, 'first.tbl')
        shutil.copy(sc.table, first_table)
        sc.http.set('/members.json', members_with_amforc_at(-33.87, 151.21))
        wait_for('the move held back', lambda: guard(sc)['held'], 20)
        mmdb = os.path.join(sc.dir, 'maxmind', 'CityLite.mmdb')
        shutil.copy(os.path.join(ibptest.MAXMIND, 'GeoLite2-City-Test.mmdb'), mmdb + '.new')
        os.rename(mmdb + '.new', mmdb)
        sc.config['GeoDNSOverrides'] = {HOST: {'JP': {'memberName': 'Amforc'}}}
        sc.write_config()
        wait_for('weighed again', lambda: guard(sc)['refusals'] >= 2, 20)
        eq(guard(sc)['held'], True, 'still held')
        sc.http.set('/results', offline('Amforc'), headers={'X-IBP-Results-Source': 'official'})
        wait_for('the offline member published', lambda: sc.generation() > gen, 10)
        down_gen = sc.generation()
        sc.http.set('/results', b'{}', headers={'X-IBP-Results-Source': 'official'})
        wait_for('Amforc back', lambda: sc.generation() > down_gen and first(sc) == 'Amforc', 10)
        walks = [ln for ln in sc.logtext().splitlines() if 'published table generation' in ln
                 and 'MaxMind walked' in ln]
        eq(len(walks), 1, 'only the first table walked MaxMind: %r' % walks)
        info = json.loads(subprocess.run([ibptest.TABLE_TOOL, 'info', sc.table], capture_output=True,
                                         text=True).stdout)
        city = [i['detail'] for i in info['inputs'] if i['kind'] == 'city-db']
        check(len(city) == 1 and city[0].startswith('GeoIP2-City '),
              'the database of the table in place: %r' % city)
        diff = json.loads(subprocess.run([ibptest.TABLE_TOOL, 'diff', first_table, sc.table],
                                         capture_output=True, text=True).stdout)
        eq(diff['moves'], [], 'back to where it started: nobody moves')
        eq(guard(sc)['held'], True, 'held all along')


def test_off_by_default_and_small_moves_publish():
    with Sidecar(token=TOKEN) as sc:
        gen = sc.generation()
        sc.http.set('/members.json', members_with_amforc_at(-33.87, 151.21))
        wait_for('the move published', lambda: sc.generation() > gen, 20)
        g = guard(sc)
        eq((g['max_shift_percent'], g['held'], g['last_weighed']), (0, False, None),
           'off: nothing weighed')
    with Sidecar(extra={'Routing': {'MaxShiftPercent': 20}}, token=TOKEN) as sc:
        gen = sc.generation()
        # A few kilometres: nobody moves, or few.
        sc.http.set('/members.json', members_with_amforc_at(47.2, 8.2))
        wait_for('the small move published', lambda: sc.generation() > gen, 20)
        g = guard(sc)
        check(not g['held'] and g['last_weighed'] and g['last_weighed']['shift_percent'] <= 20,
              'small move: %r' % g)


if __name__ == '__main__':
    ibptest.main(globals())
