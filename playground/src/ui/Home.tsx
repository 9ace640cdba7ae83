/**
 * The signed-in screen: a sidebar (chats, friends, lobby, profile) and the
 * open view. The inbox subscription lives here, for as long as the user is
 * signed in: it keeps the room list, its last messages and unread badges
 * live, and hands each message to the open chat too. So does the presence
 * subscription, for every dot shown.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useQuery } from 'urql';

import { Inbox, Lobby as LobbySubscription, Me, PresenceChanges, Rooms } from '../api/operations';
import type { LobbySubscription as LobbyEvent, MessageFieldsFragment, RoomFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { BlockedList } from './BlockedList';
import { Bus } from './bus';
import { ChatView } from './ChatView';
import { FriendsView } from './FriendsView';
import { useLive } from './live';
import { LobbyView } from './LobbyView';
import { MessageSearch } from './MessageSearch';
import { ErrorLine } from './parts';
import { PasswordForm } from './PasswordForm';
import { PresenceBook, PresenceContext } from './presence';
import { DigestSetting, ProfileView } from './ProfileView';
import { RoomList } from './RoomList';
import { useLink, useSession } from './session';

type Tab = 'chats' | 'friends' | 'lobby' | 'profile';

export type LobbyMessage = LobbyEvent['lobby'] & { key: number };

const LOBBY_KEPT = 200;

/** The room the address asks for, `?room=<identity>`: digest mails link to
 * the client so. */
const linkedRoom = (): string | null => new URLSearchParams(window.location.search).get('room');

export function Home() {
  const { signOut } = useSession();
  const link = useLink();
  const [tab, setTab] = useState<Tab>('chats');
  // A linked room opens once signed in, and the link is spent: the address
  // loses it, and the first list of rooms says whether the viewer is in it.
  const linked = useRef(linkedRoom());
  const [openRoom, setOpenRoom] = useState<string | null>(linked.current);
  // The message the open room goes to: one found by a search, a new object
  // at each click, so a second click on it goes there again.
  const [focus, setFocus] = useState<MessageFieldsFragment | null>(null);
  // Why the chat that was open closed by itself (the viewer left, was removed).
  const [notice, setNotice] = useState<string | null>(null);
  const [me, refetchMe] = useQuery({ query: Me });
  const [rooms, refetchRooms] = useQuery({ query: Rooms });
  useEffect(() => {
    const address = new URL(window.location.href);
    if (!address.searchParams.has('room')) return;
    address.searchParams.delete('room');
    window.history.replaceState(window.history.state, '', address);
  }, []);
  useEffect(() => {
    if (!rooms.data || linked.current === null) return;
    if (!rooms.data.rooms.some((candidate) => candidate.identity === linked.current)) {
      setOpenRoom(null);
      setNotice(t('roomNotFound'));
    }
    linked.current = null;
  }, [rooms.data]);
  const inbox = useMemo(() => new Bus<MessageFieldsFragment>(), []);
  const presence = useMemo(() => new PresenceBook(), []);

  // Many messages in a burst need one refresh of the list, not one each.
  const refreshTimer = useRef<number | undefined>(undefined);
  const refreshRooms = useCallback(() => {
    window.clearTimeout(refreshTimer.current);
    refreshTimer.current = window.setTimeout(() => refetchRooms({ requestPolicy: 'network-only' }), 150);
  }, [refetchRooms]);
  useEffect(() => () => window.clearTimeout(refreshTimer.current), []);

  useLive(Inbox, 'inbox', {
    variables: () => ({}),
    onData(event) {
      inbox.emit(event.inbox);
      refreshRooms();
    },
  });

  useLive(PresenceChanges, 'presence', {
    variables: () => ({}),
    onData: (event) => presence.put(event.presence.user.identity, event.presence.presence),
  });

  const [lobby, setLobby] = useState<LobbyMessage[]>([]);
  const [lobbyUnseen, setLobbyUnseen] = useState(0);
  const lobbyKey = useRef(0);
  useLive(LobbySubscription, 'lobby', {
    variables: () => ({}),
    onData(event) {
      lobbyKey.current += 1;
      const message = { ...event.lobby, key: lobbyKey.current };
      setLobby((kept) => [...kept.slice(-(LOBBY_KEPT - 1)), message]);
      setLobbyUnseen((count) => count + 1);
    },
  });
  useEffect(() => {
    if (tab === 'lobby') setLobbyUnseen(0);
  }, [tab, lobby]);

  // After a reconnect, and whenever the window comes back into view, the
  // list may be out of date (rooms joined meanwhile have no message yet).
  useEffect(() => {
    if (link.generation > 1) refreshRooms();
  }, [link.generation, refreshRooms]);
  useEffect(() => {
    window.addEventListener('focus', refreshRooms);
    return () => window.removeEventListener('focus', refreshRooms);
  }, [refreshRooms]);

  // A refresh that fails (the server is restarting) keeps the last list,
  // and with it the open chat and whatever waits in its send queue.
  const [roomList, setRoomList] = useState<RoomFieldsFragment[]>([]);
  useEffect(() => {
    if (rooms.data) setRoomList(rooms.data.rooms);
  }, [rooms.data]);
  const viewer = me.data?.me;
  const refreshMe = () => refetchMe({ requestPolicy: 'network-only' });
  const room = roomList.find((candidate) => candidate.identity === openRoom) ?? null;
  const unread = roomList.reduce((sum, candidate) => sum + candidate.unreadCount, 0);

  const open = (identity: string, at: MessageFieldsFragment | null = null) => {
    setOpenRoom(identity);
    setFocus(at);
    setNotice(null);
    setTab('chats');
    refreshRooms();
  };
  const gone = useCallback(
    (why: string) => {
      setOpenRoom(null);
      setNotice(why);
      refreshRooms();
    },
    [refreshRooms],
  );

  return (
    <PresenceContext.Provider value={presence}>
      <div className="home">
        <nav className="sidebar">
          <header className="me">
            <strong data-testid="viewer">{viewer ? viewer.nickname || viewer.username : '…'}</strong>
            <span className={`link ${link.state}`} role="status" data-testid="link">
              {t(link.state)}
            </span>
            <button className="quiet" onClick={signOut} data-testid="logout">
              {t('logout')}
            </button>
          </header>
          <div className="tabs" role="tablist">
            {(['chats', 'friends', 'lobby', 'profile'] as const).map((name) => (
              <button
                key={name}
                role="tab"
                aria-selected={tab === name}
                onClick={() => setTab(name)}
                data-testid={`tab-${name}`}
              >
                {t(name)}
                {name === 'chats' && unread > 0 && <span className="badge">{unread}</span>}
                {name === 'lobby' && lobbyUnseen > 0 && tab !== 'lobby' && <span className="dot" />}
              </button>
            ))}
          </div>
          {link.state === 'online' && <ErrorLine error={rooms.error} />}
          {tab === 'chats' && viewer && (
            <MessageSearch rooms={roomList} viewer={viewer} onOpen={(message) => open(message.roomIdentity, { ...message })}>
              <RoomList rooms={roomList} viewer={viewer} openRoom={openRoom} onOpen={open} />
            </MessageSearch>
          )}
          {tab === 'friends' && <FriendsView onOpenRoom={open} onRoomsChanged={refreshRooms} />}
          {tab === 'profile' && viewer && (
            <>
              <ProfileView viewer={viewer} onSaved={refreshMe} />
              <DigestSetting viewer={viewer} onSaved={refreshMe} />
            </>
          )}
          {tab === 'profile' && <BlockedList />}
          {tab === 'profile' && <PasswordForm />}
          {tab === 'lobby' && <p className="hint">{t('lobbyHint')}</p>}
        </nav>
        <section className="main">
          {tab === 'lobby' ? (
            <LobbyView messages={lobby} />
          ) : room && viewer ? (
            <ChatView
              key={room.identity}
              room={room}
              viewer={viewer}
              inbox={inbox}
              focus={focus}
              onRoomChanged={refreshRooms}
              onGone={gone}
            />
          ) : (
            <div className="empty">
              {notice && (
                <p className="notice" role="status" data-testid="notice">
                  {notice}
                </p>
              )}
              <p>{t('pickRoom')}</p>
            </div>
          )}
        </section>
      </div>
    </PresenceContext.Provider>
  );
}
