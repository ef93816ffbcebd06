/* member_events as IBP's node answers them (ibp-geodns-libs data.EventRecord
 * through Go's encoding/json): keys in the struct's order, DomainName and
 * Endpoint omitted when empty, Data an object or null, times as Go writes a
 * time.Time, strings escaped as Go does. */
#ifndef IBPDNS_SIDECAR_EVENT_JSON_H
#define IBPDNS_SIDECAR_EVENT_JSON_H

#include <jansson.h>

#include "gojson.h"
#include "store.h"   /* sc_event_row_t */

/* One row as a JSON object:
 * {"CheckType","CheckName","MemberName","DomainName"?,"Endpoint"?,"Status",
 *  "ErrorText","Data","IsIPv6","StartTime","EndTime","StartDate","EndDate"};
 * an open event (no end_time) has EndTime "0001-01-01T00:00:00Z" and
 * EndDate "". */
void sc_event_json(sc_buf_t *b, const sc_event_row_t *r);

/* additional_data as IBP reads it: json.Unmarshal into a
 * map[string]interface{} (errors ignored), then json.Marshal: an object
 * with its keys sorted, numbers as float64, or null (NULL, not JSON, not an
 * object). */
void sc_event_data_json(sc_buf_t *b, const char *data);

/* Go's json.Marshal of a value json.Unmarshal decoded into interface{}
 * (objects sorted by key, numbers as float64). */
void sc_go_value(sc_buf_t *b, const json_t *v);

/* A float64 as Go's encoding/json writes it (shortest form, exponent
 * below 1e-6 and from 1e21). */
void sc_go_float(sc_buf_t *b, double f);

/* {"result":"<msg>"}, IBP's error body of getMemberEvents. */
void sc_event_result_json(sc_buf_t *b, const char *msg);

#endif
