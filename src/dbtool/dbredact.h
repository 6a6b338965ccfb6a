/*
 * dbtool/dbredact: keep pieces of a password out of the messages libpq
 * writes about a URL it misread.
 *
 * A password with an unencoded '/' ("postgresql://app:pa/ss@host/db") ends
 * libpq's authority at that '/': it then reads "app" as the host, "pa" as
 * the port and "ss@host/db" as the database, and its messages quote them
 * ('invalid integer value "pa" for connection option "port"'). The URLs
 * this tool shows are redacted (util/dburl.h); this scrubs the server's and
 * libpq's text: every double-quoted span of `msg` that contains a piece
 * of the URL's possible password — the stretch between the first ':' after
 * "://" and the last '@', split at '/', ':', '@', '?', '&', '=', ',' and
 * '#' — becomes "***". It may hide more than the password (a quoted user
 * or database name sharing text with it), never less of it.
 *
 * Pure; any thread. msg is rewritten in place, within msglen bytes.
 */
#ifndef TODO_DBTOOL_DBREDACT_H
#define TODO_DBTOOL_DBREDACT_H

#include <stddef.h>

void dbredact_message(char *msg, size_t msglen, const char *url);

#endif
