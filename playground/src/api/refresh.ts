/**
 * Keeps a signed-in session's token fresh. The server closes a socket when
 * the token it was opened with expires (4403), so a new token is asked for
 * well before that and handed to the connection, whose socket reconnects
 * with it.
 */
import { RefreshToken } from './operations';
import { isUnauthenticated, type Connection } from './client';

/** A token and the moment (RFC 3339) it stops working, as login, register
 * and refreshToken answer; `null` for a token kept by an older client. */
export interface Grant {
  token: string;
  expiresAt: string | null;
}

/** Refresh at this share of the time a token has left… */
const SHARE = 0.8;
/** …but at least this long before it ends, time for a retry or two. */
const MARGIN_MS = 5_000;
/** Never sooner than this: a clock far ahead of the server's would
 * otherwise ask again and again without a pause. */
const SOONEST_MS = 2_000;
/** A refresh that failed for want of the server is tried again after this. */
const RETRY_MS = 5_000;
/** setTimeout's longest delay (about 24.8 days); a longer one fires at once. */
const LONGEST_MS = 2 ** 31 - 1;

/** How long to wait before refreshing a token that expires at `expiresAt`.
 * This browser's clock is trusted to be near the server's. */
export function refreshDelay(expiresAt: string | null, now = Date.now()): number {
  // Expiry unknown: refresh now, and learn it.
  if (expiresAt === null) return 0;
  const left = Date.parse(expiresAt) - now;
  if (Number.isNaN(left)) return 0;
  const delay = Math.min(left * SHARE, left - MARGIN_MS);
  return Math.min(Math.max(delay, SOONEST_MS), LONGEST_MS);
}

export interface Refresher {
  /** Refresh now rather than when it is due. */
  now(): void;
  stop(): void;
}

/**
 * Refreshes the token of `connection` once, when due, and hands the new
 * grant to `renewed` (which starts the next round). A refresh refused as
 * UNAUTHENTICATED has signed the session out already (see `connect`);
 * any other failure (the server restarting, a rate limit) is tried again
 * shortly, for as long as the server accepts the token.
 */
export function keepFresh(connection: Connection, expiresAt: string | null, renewed: (grant: Grant) => void): Refresher {
  let timer: number | undefined;
  let stopped = false;
  const attempt = async () => {
    window.clearTimeout(timer);
    const result = await connection.urql.mutation(RefreshToken, {}).toPromise();
    if (stopped) return;
    const fresh = result.data?.refreshToken;
    if (fresh) {
      connection.renew(fresh.token);
      renewed({ token: fresh.token, expiresAt: fresh.expiresAt });
    } else if (!(result.error && isUnauthenticated(result.error))) {
      timer = window.setTimeout(() => void attempt(), RETRY_MS);
    }
  };
  timer = window.setTimeout(() => void attempt(), refreshDelay(expiresAt));
  return {
    now: () => void attempt(),
    stop() {
      stopped = true;
      window.clearTimeout(timer);
    },
  };
}
