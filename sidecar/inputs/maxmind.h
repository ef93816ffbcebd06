/* Keeping the MaxMind databases current (IBP-NODE §3.4): with an account,
 * HEAD the download URL and compare its Last-Modified with the marker file
 * `.<Name>`; when it differs or the database is missing, download the
 * tar.gz, extract the .mmdb (libarchive), check that libmaxminddb opens it,
 * and rename it into place, then write the marker. Without an account the
 * local file must exist. A failed download or a corrupt archive keeps the
 * database in place. */
#ifndef IBPDNS_SIDECAR_MAXMIND_H
#define IBPDNS_SIDECAR_MAXMIND_H

#include <stdbool.h>

#include "fetch.h"
#include "ibp_err.h"
#include "ibp_limits.h"

#define SC_MAXMIND_DOWNLOAD_BASE "https://download.maxmind.com/geoip/databases"

typedef struct sc_maxmind_cfg {
    const char *dir;           /* Maxmind.MaxmindDBPath */
    const char *account;       /* AccountID; "" or NULL: local files only */
    const char *license_key;   /* LicenseKey: a secret, never logged */
    const char *download_base; /* default SC_MAXMIND_DOWNLOAD_BASE (tests point it at loopback) */
    sc_fetch_limits_t limits;
} sc_maxmind_cfg_t;

typedef struct sc_maxmind_db {
    const char *edition;       /* "GeoLite2-City", "GeoLite2-ASN", "GeoLite2-Country" */
    const char *file;          /* "CityLite.mmdb", "AsnLite.mmdb", "CountryLite.mmdb" */
} sc_maxmind_db_t;

extern const sc_maxmind_db_t SC_MAXMIND_CITY, SC_MAXMIND_ASN, SC_MAXMIND_COUNTRY;

/* Additions. Zero fields of cfg->limits mean these (an archive is far larger
 * and slower than a config): 10 minutes, 512 MiB. */
#define SC_MAXMIND_DEFAULT_TIMEOUT_MS IBP_MAXMIND_TIMEOUT_MS
#define SC_MAXMIND_DEFAULT_MAX_BYTES ((size_t)512 << 20)

/* Makes dir/<file> current. *changed: a new file was put in place. */
bool sc_maxmind_refresh(const sc_maxmind_cfg_t *cfg, const sc_maxmind_db_t *db, bool *changed,
                        ibp_err_t *err);

#endif
