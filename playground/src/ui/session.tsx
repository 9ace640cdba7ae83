/**
 * The signed-in session: the token (kept in localStorage, so a reload
 * stays signed in) and the connection built from it.
 */
import { createContext, useContext, useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { Provider } from 'urql';

import { connect, type Connection } from '../api/client';

const TOKEN_KEY = 'chatroom.token';

interface Session {
  token: string | null;
  connection: Connection;
  signIn(token: string): void;
  signOut(): void;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [token, setToken] = useState<string | null>(() => localStorage.getItem(TOKEN_KEY));
  const [connection, setConnection] = useState<Connection | null>(null);

  useEffect(() => {
    const signOut = () => {
      localStorage.removeItem(TOKEN_KEY);
      setToken(null);
    };
    const opened = connect(token, signOut);
    setConnection(opened);
    return () => opened.close();
  }, [token]);

  if (!connection) return null;
  const session: Session = {
    token,
    connection,
    signIn(next) {
      localStorage.setItem(TOKEN_KEY, next);
      setToken(next);
    },
    signOut() {
      localStorage.removeItem(TOKEN_KEY);
      setToken(null);
    },
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
