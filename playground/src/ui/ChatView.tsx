/**
 * One room: its history, scroll-back, live messages and the send box.
 *
 * What the view shows is the room's messages in order, each once. History
 * comes first; then a `messages(after:)` subscription from the newest
 * message shown, started again after every reconnect from whatever is
 * newest then, so a message sent while the socket was down arrives, and
 * nothing shows twice (every message is kept by identity).
 */
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type FormEvent } from 'react';
import { useClient, useMutation, type CombinedError } from 'urql';

import { AddMembers, History, LeaveRoom, MarkRoomRead, RoomMessages, SendMessage } from '../api/operations';
import type { MessageFieldsFragment, RoomFieldsFragment, UserFieldsFragment } from '../gql/graphql';
import { describe, t } from '../i18n';
import type { Bus } from './bus';
import { useLive } from './live';
import { Avatar, ErrorLine, displayName, time } from './parts';
import { roomTitle, usernames } from './RoomList';
import { useLink } from './session';

type Message = MessageFieldsFragment;

/** A message of ours the room has not delivered back to us yet. */
interface Outgoing {
  clientId: string;
  content: string;
  state: 'pending' | 'sent' | 'failed';
  error?: string;
  /** A network failure is worth retrying by itself; a refusal is not. */
  retriable?: boolean;
}

const PAGE = 30;

interface Props {
  room: RoomFieldsFragment;
  viewer: UserFieldsFragment;
  inbox: Bus<Message>;
  /** The room changed on the server (read, members): show it anew. */
  onRoomChanged(): void;
  onLeft(): void;
}

export function ChatView({ room, viewer, inbox, onRoomChanged, onLeft }: Props) {
  const client = useClient();
  const { generation } = useLink();
  const [messages, setMessages] = useState<Message[]>([]);
  const [outbox, setOutbox] = useState<Outgoing[]>([]);
  const [hasOlder, setHasOlder] = useState(false);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<CombinedError | null>(null);
  const seen = useRef(new Set<string>());
  // The newest message shown: where a resumed subscription starts.
  const newest = useRef<string | null>(null);
  const list = useRef<HTMLDivElement>(null);
  // Distance from the bottom to keep when older messages are put on top.
  const keepFromBottom = useRef<number | null>(null);

  const add = useCallback(
    (incoming: Message[], where: 'older' | 'newer') => {
      const fresh = incoming.filter((message) => !seen.current.has(message.identity));
      if (fresh.length === 0) return;
      fresh.forEach((message) => seen.current.add(message.identity));
      if (where === 'newer' || newest.current === null) {
        newest.current = fresh[fresh.length - 1]?.cursor ?? newest.current;
      }
      if (where === 'older' && list.current) {
        keepFromBottom.current = list.current.scrollHeight - list.current.scrollTop;
      }
      setMessages((shown) => (where === 'newer' ? [...shown, ...fresh] : [...fresh, ...shown]));
      const delivered = new Set(
        fresh.filter((m) => m.sender.identity === viewer.identity && m.clientId).map((m) => m.clientId),
      );
      if (delivered.size > 0) setOutbox((queued) => queued.filter((item) => !delivered.has(item.clientId)));
    },
    [viewer.identity],
  );

  const loadPage = useCallback(
    async (before: string | null) => {
      const result = await client
        .query(History, { roomIdentity: room.identity, last: PAGE, before })
        .toPromise();
      if (result.error) setError(result.error);
      const page = result.data?.messages;
      if (!page) return;
      add(
        page.edges.map((edge) => edge.node),
        'older',
      );
      setHasOlder(page.pageInfo.hasPreviousPage);
    },
    [client, room.identity, add],
  );

  useEffect(() => {
    void loadPage(null).then(() => setLoaded(true));
  }, [loadPage]);

  useLive(RoomMessages, loaded ? room.identity : null, {
    async variables() {
      // A room that shows nothing has no cursor to resume from: read what
      // it holds now first, so a message sent while we were away still shows.
      if (newest.current === null) await loadPage(null);
      return { roomIdentity: room.identity, after: newest.current };
    },
    onData: (data) => add([data.messages], 'newer'),
    onError: setError,
  });

  // The inbox was subscribed before this room was opened; while the room
  // shows nothing yet, it covers the moment before our own subscription is
  // in place. Once there is a cursor, the room's subscription alone is
  // gap-free, and mixing in a second stream could move `newest` past a
  // message not yet received.
  useEffect(
    () =>
      inbox.listen((message) => {
        if (message.roomIdentity === room.identity && newest.current === null) add([message], 'newer');
      }),
    [inbox, room.identity, add],
  );

  // Keep the bottom in view as messages arrive, unless the reader has
  // scrolled up; keep the reader's place when older messages are added.
  useLayoutEffect(() => {
    const element = list.current;
    if (!element) return;
    if (keepFromBottom.current !== null) {
      element.scrollTop = element.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = null;
    } else if (element.scrollHeight - element.scrollTop - element.clientHeight < 120) {
      element.scrollTop = element.scrollHeight;
    }
  }, [messages, outbox]);

  // Reading the room marks it read, so its badge clears here and on the
  // user's other devices.
  const othersShown = messages.filter((m) => m.sender.identity !== viewer.identity).length;
  useEffect(() => {
    if (room.unreadCount === 0 && othersShown === 0) return;
    const timer = window.setTimeout(() => {
      void client
        .mutation(MarkRoomRead, { roomIdentity: room.identity })
        .toPromise()
        .then(onRoomChanged);
    }, 300);
    return () => window.clearTimeout(timer);
  }, [client, room.identity, room.unreadCount, othersShown, onRoomChanged]);

  const deliver = useCallback(
    async (item: Outgoing) => {
      const update = (change: Partial<Outgoing>) =>
        setOutbox((queued) => queued.map((q) => (q.clientId === item.clientId ? { ...q, ...change } : q)));
      update({ state: 'pending', error: undefined });
      // The same clientId on every try: the server stores the message once.
      const result = await client
        .mutation(SendMessage, { roomIdentity: room.identity, content: item.content, clientId: item.clientId })
        .toPromise();
      if (result.error) {
        update({ state: 'failed', error: describe(result.error), retriable: !result.error.graphQLErrors.length });
      } else {
        update({ state: 'sent' });
      }
    },
    [client, room.identity],
  );

  // Back online: send again what failed for want of a connection.
  const outboxNow = useRef(outbox);
  outboxNow.current = outbox;
  useEffect(() => {
    if (generation > 1) {
      outboxNow.current.filter((item) => item.state === 'failed' && item.retriable).forEach((item) => void deliver(item));
    }
  }, [generation, deliver]);

  const send = (content: string) => {
    const item: Outgoing = { clientId: newClientId(), content, state: 'pending' };
    setOutbox((queued) => [...queued, item]);
    void deliver(item);
  };

  return (
    <div className="chat" data-testid="chat">
      <RoomHeader room={room} viewer={viewer} onChanged={onRoomChanged} onLeft={onLeft} />
      <div className="messages" ref={list} data-testid="messages">
        {hasOlder && (
          <button className="quiet older" data-testid="older" onClick={() => void loadPage(messages[0]?.cursor ?? null)}>
            {t('older')}
          </button>
        )}
        {loaded && messages.length === 0 && outbox.length === 0 && <p className="hint">{t('noMessages')}</p>}
        {messages.map((message) => (
          <MessageRow key={message.identity} message={message} mine={message.sender.identity === viewer.identity} />
        ))}
        {outbox.map((item) => (
          <div key={item.clientId} className={`message mine ${item.state}`} data-testid="outgoing">
            <div className="bubble">
              <p>{item.content}</p>
              <span className="meta">
                {item.state === 'failed' ? (
                  <>
                    <span role="alert">
                      {t('failed')}: {item.error}
                    </span>{' '}
                    <button className="link-button" onClick={() => void deliver(item)} data-testid="retry">
                      {t('retry')}
                    </button>
                  </>
                ) : (
                  t('sending')
                )}
              </span>
            </div>
          </div>
        ))}
      </div>
      <ErrorLine error={error} />
      <SendBox onSend={send} />
    </div>
  );
}

function MessageRow({ message, mine }: { message: Message; mine: boolean }) {
  return (
    <div className={mine ? 'message mine' : 'message'} data-testid="message">
      {!mine && <Avatar name={displayName(message.sender)} image={message.sender.avatar} />}
      <div className="bubble">
        {!mine && <span className="sender">{displayName(message.sender)}</span>}
        <p>{message.content}</p>
        <time className="meta">{time(message.createdAt)}</time>
      </div>
    </div>
  );
}

function SendBox({ onSend }: { onSend(content: string): void }) {
  const [draft, setDraft] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!draft.trim()) return;
    onSend(draft);
    setDraft('');
  };
  return (
    <form className="send" onSubmit={submit}>
      <textarea
        name="message"
        value={draft}
        aria-label={t('typeMessage')}
        placeholder={t('typeMessage')}
        rows={2}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
        }}
      />
      <button type="submit">{t('send')}</button>
    </form>
  );
}

interface HeaderProps {
  room: RoomFieldsFragment;
  viewer: UserFieldsFragment;
  onChanged(): void;
  onLeft(): void;
}

function RoomHeader({ room, viewer, onChanged, onLeft }: HeaderProps) {
  const [adding, setAdding] = useState(false);
  const [names, setNames] = useState('');
  const [added, addMembers] = useMutation(AddMembers);
  const [left, leave] = useMutation(LeaveRoom);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const answer = await addMembers({ roomIdentity: room.identity, usernames: usernames(names) });
    if (answer.data) {
      setAdding(false);
      setNames('');
      onChanged();
    }
  };
  return (
    <header className="chat-header">
      <div>
        <h2>{roomTitle(room, viewer)}</h2>
        <span className="hint">
          {room.roomType === 'GROUP'
            ? `${t('members', { count: room.memberCount })}${room.info ? ` · ${room.info}` : ''}`
            : `#${room.number}`}
        </span>
      </div>
      {room.roomType === 'GROUP' && (
        <div className="row">
          {adding ? (
            <form className="row" onSubmit={submit} aria-label={t('addMembers')} data-testid="add-members-form">
              <input
                name="members"
                value={names}
                onChange={(e) => setNames(e.target.value)}
                placeholder={t('membersToAdd')}
                aria-label={t('membersToAdd')}
              />
              <button type="submit">{t('add')}</button>
              <button type="button" className="quiet" onClick={() => setAdding(false)}>
                {t('cancel')}
              </button>
            </form>
          ) : (
            <button className="quiet" onClick={() => setAdding(true)} data-testid="add-members">
              {t('addMembers')}
            </button>
          )}
          <button
            className="quiet danger"
            data-testid="leave"
            onClick={async () => {
              const answer = await leave({ roomIdentity: room.identity });
              if (answer.data) onLeft();
            }}
          >
            {t('leave')}
          </button>
        </div>
      )}
      <ErrorLine error={added.error ?? left.error} />
    </header>
  );
}

/** Unique enough for an idempotency key, and available on plain http
 * (crypto.randomUUID needs a secure context). */
function newClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
