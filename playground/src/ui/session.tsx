/**
 * The signed-in session: the token and its expiry (kept in localStorage, so
 * a reload stays signed in), the connection built from it, and the refresh
 * that replaces the token before it expires. A refresh hands the new token
 * to the same connection; only signing in or out starts a new one.
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import { Provider } from 'urql';

import { connect, type Connection } from '../api/client';
import { keepFresh, type Grant, type Refresher } from '../api/refresh';
import { t } from '../i18n';

const TOKEN_KEY = 'chatroom.token';
const EXPIRES_KEY = 'chatroom.expiresAt';

function load(): Grant | null {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { token, expiresAt: localStorage.getItem(EXPIRES_KEY) } : null;
}

function store(grant: Grant | null): void {
  if (grant) {
    localStorage.setItem(TOKEN_KEY, grant.token);
    if (grant.expiresAt) localStorage.setItem(EXPIRES_KEY, grant.expiresAt);
  } else {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(EXPIRES_KEY);
  }
}

interface Session {
  signedIn: boolean;
  /** Counts sign-ins and sign-outs: the signed-in screen starts afresh
   * with each, and not with each refreshed token. */
  epoch: number;
  /** Why the last session ended without the user signing out. */
  notice: string | null;
  connection: Connection;
  signIn(grant: Grant): void;
  signOut(): void;
  /** Trade the token for a new one now, not when it is due. */
  refreshNow(): void;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [grant, setGrant] = useState<Grant | null>(load);
  const [epoch, setEpoch] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);
  const [connection, setConnection] = useState<Connection | null>(null);
  // The connection starts with the token of its sign-in; later tokens reach it through `renew`.
  const grantNow = useRef(grant);
  grantNow.current = grant;

  const end = useCallback((why: string | null) => {
    store(null);
    setGrant(null);
    setEpoch((n) => n + 1);
    setNotice(why);
  }, []);

  useEffect(() => {
    // The server no longer takes the token (it expired, the password was
    // changed elsewhere, the secret changed): signing in again is the only
    // cure, and reconnecting with it would be refused forever.
    const opened = connect(grantNow.current?.token ?? null, () => end(t('sessionEnded')));
    setConnection(opened);
    return () => opened.close();
  }, [epoch, end]);

  const refresher = useRef<Refresher | null>(null);
  const signedIn = grant !== null;
  const expiresAt = grant?.expiresAt ?? null;
  useEffect(() => {
    if (!connection || !signedIn) return;
    const round = keepFresh(connection, expiresAt, (next) => {
      store(next);
      setGrant(next);
    });
    refresher.current = round;
    return () => round.stop();
  }, [connection, signedIn, expiresAt]);

  if (!connection) return null;
  const session: Session = {
    signedIn,
    epoch,
    notice,
    connection,
    signIn(next) {
      store(next);
      setGrant(next);
      setEpoch((n) => n + 1);
      setNotice(null);
    },
    signOut: () => end(null),
    refreshNow: () => refresher.current?.now(),
  };
  return (
    <SessionContext.Provider value={session}>
      <Provider value={connection.urql}>{children}</Provider>
    </SessionContext.Provider>
  );
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}

/** The socket's state; `generation` grows by one on every (re)connect. */
export function useLink(): Connection['link'] {
  const { connection } = useSession();
  return useSyncExternalStore(connection.watch, () => connection.link);
}
