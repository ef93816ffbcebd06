#!/usr/bin/python3
"""Synthetic IBP networks for bench/scale, from a seed.

usage: gen.py OUTDIR N {all|own} SEED

Writes OUTDIR/{node.json,members.json,services.json,static.json}: N members
at real data-centre cities (members beyond the list's length share a city,
moved by up to 0.2 degrees so that no two sit on the same point), each with
an IPv4 and an IPv6 address; the services are examples/services_rpc.json.
"all": every member serves every service; "own": each member serves a
random 60 % of them (the IBP shape: members of different levels serve
different services). Same arguments, same files.
"""
import json
import os
import random
import sys

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(SRC, 'examples')

# (city, latitude, longitude): cities with large data-centre markets.
CITIES = [
    ('Ashburn', 39.04, -77.49), ('New York', 40.71, -74.01), ('Chicago', 41.88, -87.63),
    ('Dallas', 32.78, -96.80), ('Los Angeles', 34.05, -118.24), ('San Jose', 37.34, -121.89),
    ('Seattle', 47.61, -122.33), ('Atlanta', 33.75, -84.39), ('Miami', 25.76, -80.19),
    ('Denver', 39.74, -104.99), ('Phoenix', 33.45, -112.07), ('Toronto', 43.65, -79.38),
    ('Montreal', 45.50, -73.57), ('Vancouver', 49.28, -123.12), ('Mexico City', 19.43, -99.13),
    ('Queretaro', 20.59, -100.39), ('Sao Paulo', -23.55, -46.63), ('Rio de Janeiro', -22.91, -43.17),
    ('Buenos Aires', -34.60, -58.38), ('Santiago', -33.45, -70.67), ('Bogota', 4.71, -74.07),
    ('Lima', -12.05, -77.04), ('London', 51.51, -0.13), ('Manchester', 53.48, -2.24),
    ('Dublin', 53.35, -6.26), ('Amsterdam', 52.37, 4.90), ('Frankfurt', 50.11, 8.68),
    ('Paris', 48.86, 2.35), ('Marseille', 43.30, 5.37), ('Brussels', 50.85, 4.35),
    ('Zurich', 47.38, 8.54), ('Geneva', 46.20, 6.14), ('Milan', 45.46, 9.19),
    ('Madrid', 40.42, -3.70), ('Barcelona', 41.39, 2.17), ('Lisbon', 38.72, -9.14),
    ('Vienna', 48.21, 16.37), ('Prague', 50.08, 14.44), ('Warsaw', 52.23, 21.01),
    ('Berlin', 52.52, 13.40), ('Munich', 48.14, 11.58), ('Hamburg', 53.55, 9.99),
    ('Copenhagen', 55.68, 12.57), ('Stockholm', 59.33, 18.07), ('Oslo', 59.91, 10.75),
    ('Helsinki', 60.17, 24.94), ('Tallinn', 59.44, 24.75), ('Riga', 56.95, 24.11),
    ('Vilnius', 54.69, 25.28), ('Bucharest', 44.43, 26.10), ('Sofia', 42.70, 23.32),
    ('Budapest', 47.50, 19.04), ('Belgrade', 44.79, 20.45), ('Zagreb', 45.81, 15.98),
    ('Athens', 37.98, 23.73), ('Istanbul', 41.01, 28.98), ('Kyiv', 50.45, 30.52),
    ('Tel Aviv', 32.09, 34.78), ('Dubai', 25.20, 55.27), ('Riyadh', 24.71, 46.68),
    ('Doha', 25.29, 51.53), ('Cairo', 30.04, 31.24), ('Lagos', 6.52, 3.38),
    ('Nairobi', -1.29, 36.82), ('Johannesburg', -26.20, 28.05), ('Cape Town', -33.92, 18.42),
    ('Mumbai', 19.08, 72.88), ('Chennai', 13.08, 80.27), ('Bangalore', 12.97, 77.59),
    ('Delhi', 28.70, 77.10), ('Hyderabad', 17.39, 78.49), ('Singapore', 1.35, 103.82),
    ('Kuala Lumpur', 3.14, 101.69), ('Jakarta', -6.21, 106.85), ('Bangkok', 13.76, 100.50),
    ('Ho Chi Minh City', 10.82, 106.63), ('Hanoi', 21.03, 105.85), ('Manila', 14.60, 120.98),
    ('Hong Kong', 22.32, 114.17), ('Taipei', 25.03, 121.57), ('Shanghai', 31.23, 121.47),
    ('Beijing', 39.90, 116.41), ('Shenzhen', 22.54, 114.06), ('Seoul', 37.57, 126.98),
    ('Tokyo', 35.68, 139.69), ('Osaka', 34.69, 135.50), ('Sydney', -33.87, 151.21),
    ('Melbourne', -37.81, 144.96), ('Perth', -31.95, 115.86), ('Brisbane', -27.47, 153.03),
    ('Auckland', -36.85, 174.76), ('Honolulu', 21.31, -157.86), ('Anchorage', 61.22, -149.90),
    ('Reykjavik', 64.15, -21.94), ('Almaty', 43.24, 76.95), ('Tbilisi', 41.72, 44.79),
    ('Karachi', 24.86, 67.01), ('Dhaka', 23.81, 90.41), ('Casablanca', 33.57, -7.59),
    ('Panama City', 8.98, -79.52), ('Montevideo', -34.90, -56.16), ('Quito', -0.18, -78.47),
]


def member(rng, i, lat, lon, services):
    return {
        'Details': {'Name': 'Member %03d' % i, 'Website': 'https://m%03d.example' % i},
        'Membership': {'MemberLevel': 5, 'Joined': 1672549200, 'LastRankup': 1721209485},
        'Service': {'Active': 1,
                    'ServiceIPv4': '198.18.%d.%d' % (i // 250, i % 250 + 1),
                    'ServiceIPv6': '2001:db8:%x::1' % (i + 1),
                    'MonitorUrl': '', 'PrometheusEndpoint': None},
        'ServiceAssignments': {'Assigned': services},
        'Location': {'Region': '', 'Latitude': lat, 'Longitude': lon},
    }


def main():
    outdir, n, mode, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if mode not in ('all', 'own'):
        sys.exit('gen.py: mode must be all or own')
    rng = random.Random(seed)
    with open(os.path.join(EXAMPLES, 'services_rpc.json')) as f:
        services = json.load(f)
    names = list(services)
    members = {}
    for i in range(n):
        city, lat, lon = CITIES[i % len(CITIES)]
        if i >= len(CITIES):
            lat += rng.uniform(-0.2, 0.2)
            lon += rng.uniform(-0.2, 0.2)
        own = names if mode == 'all' else sorted(rng.sample(names, round(0.6 * len(names))))
        members['m%03d' % i] = member(rng, i, round(lat, 4), round(lon, 4), own)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, 'members.json'), 'w') as f:
        json.dump(members, f)
    with open(os.path.join(outdir, 'services.json'), 'w') as f:
        json.dump(services, f)
    with open(os.path.join(EXAMPLES, 'geodns-static.json')) as f:
        static = f.read()
    with open(os.path.join(outdir, 'static.json'), 'w') as f:
        f.write(static)
    node = {
        'System': {'LogLevel': 'Info', 'ConfigReloadTime': 3600,
                   'ConfigUrls': {'MembersConfig': 'members.json',
                                  'ServicesConfig': 'services.json',
                                  'StaticDNSConfig': 'static.json'}},
        'Routing': {'AnswersPerFamily': 1, 'AllDownPolicy': 'nearest', 'Ttl': 30},
    }
    with open(os.path.join(outdir, 'node.json'), 'w') as f:
        json.dump(node, f, indent=1)


if __name__ == '__main__':
    main()
