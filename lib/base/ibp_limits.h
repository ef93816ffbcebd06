/* Every bound on input, size and time, defined once: the parsers, the
 * table format, the sidecar and the tests all take them from here. */
#ifndef IBP_LIMITS_H
#define IBP_LIMITS_H

/* Names */
#define IBP_NAME_MAX 253             /* presentation length of a DNS name, no trailing dot */
#define IBP_NAME_BUF 256             /* IBP_NAME_MAX + 1 rounded up to 8 bytes (word-wise folding) */
#define IBP_MEMBER_NAME_MAX 64       /* usage rows store member_name as VARCHAR(64) */

/* Answers */
#define IBP_MAX_ANSWERS 8            /* Routing.AnswersPerFamily upper bound, per table answer */
#define IBP_USAGE_TEXT_MAX 1024      /* a usage dimension's text: client classes, counter-file strings */

/* Polling periods (ConfigReloadTime, RefreshIntervalSeconds): a day at most,
 * so that periods in milliseconds never overflow and a typo cannot stop
 * polling for years. */
#define IBP_PERIOD_MAX_S 86400
#define IBP_PERIOD_DEFAULT_S 30      /* IBP's value for <= 0 or absent */
#define IBP_FLUSH_DEFAULT_S 300      /* Storage.FlushSeconds: IBP flushes usage every 5 min */
#define IBP_MAXMIND_REFRESH_MAX_S (30 * 86400)

/* Fetches */
#define IBP_FETCH_MAX_BYTES_DEFAULT (16LL << 20)   /* System.FetchMaxBytes */
#define IBP_FETCH_TIMEOUT_S_DEFAULT 15             /* System.FetchTimeoutSeconds */
#define IBP_FETCH_TIMEOUT_S_MAX 600
#define IBP_MONITOR_TIMEOUT_MS 5000  /* IBP-NODE §5.2: a poll must not outlive its period */
#define IBP_MAXMIND_MAX_BYTES (1u << 30)
#define IBP_MAXMIND_TIMEOUT_MS 600000L

/* Parsing */
#define IBP_JSON_MAX_TREE (256 << 20) /* estimated parse memory of one JSON input */
/* ACME (BEHAVIOR §5): the value fetched for an _acme-challenge TXT. */
#define IBP_ACME_BODY_MAX 512        /* bytes of body, as IBP */
#define IBP_ACME_BUDGET_MS_DEFAULT 1000  /* Routing.AcmeBudgetMs: a lookup's longest wait */
#define IBP_ACME_BUDGET_MS_MAX 1500  /* well below PowerDNS's pipe-timeout (2000 ms) */
#define IBP_ACME_CACHE_S_DEFAULT 5   /* Routing.AcmeCacheSeconds */
#define IBP_ACME_CACHE_S_MAX 300
#define IBP_ACME_ATTEMPTS 3
#define IBP_ACME_PER_NAME_MAX 8      /* ACME TXT records at one name */
#define IBP_ACME_QUIET_MS 2000       /* a coprocess whose question went unanswered asks again after */
#define IBP_HOST_APEX_NS_MAX 16      /* Routing.HostApexNs entries */
#define IBP_TXT_MAX 4000             /* static TXT content and CAA values, bytes */

/* Member events (BEHAVIOR §6a, IBP-NODE §7.5) */
#define IBP_MIN_OFFLINE_DEFAULT_S 30 /* System.MinimumOfflineTime: IBP's value for <= 0 or absent */
#define IBP_EVENT_CHECK_NAME_MAX 100 /* characters: member_events.check_name VARCHAR(100) */
#define IBP_EVENT_ENDPOINT_MAX 2048  /* bytes of RpcUrl: a longer result is not recorded */
#define IBP_EVENT_ERROR_MAX 4096     /* bytes of ErrorText kept (cut at a character) */
#define IBP_EVENT_DATA_MAX 16384     /* bytes of Data as JSON: a larger one is stored as NULL */
#define IBP_EVENTS_OPEN_MAX 65536    /* open events the recorder follows at once */
#define IBP_EVENTS_QUEUE_MAX 65536   /* event writes waiting for the store */
#define IBP_NET_LIST_MAX 1024       /* Routing.Nets: member keys in one list (as members) */
#define IBP_EVENTS_BATCH 512         /* event writes per store transaction */
#define IBP_EVENTS_ANSWER_MAX 10000  /* /events: events in one answer (more: narrow the query) */
#define IBP_EVENTS_ANSWER_BYTES (16 << 20)   /* /events: bytes of one answer */

#endif
