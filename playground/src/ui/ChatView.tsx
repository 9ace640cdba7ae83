/**
 * One room: its history, scroll-back, live changes and the send box.
 *
 * The room's details come first (members, their roles and read positions,
 * who is typing, and the cursor of its newest change), then its history
 * (the `messages` query, older pages on demand). From then on the view
 * follows `roomEvents`, from that cursor and, after every reconnect, from
 * the last event seen, so nothing that happened while the room loaded or
 * the socket was down is lost. Each event
 * carries the current state of its message or member, put in place by
 * identity (roomState.ts): an event seen twice changes nothing.
 *
 * A room opened at a message (a search's find) shows the history around
 * it instead, the message highlighted. Until the reader pages forward to
 * the newest message (or jumps there), new messages are held back, to go
 * in once the history shown reaches them.
 */
import { Fragment, useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { useClient, type CombinedError, type OperationResult } from 'urql';

import { isForbidden } from '../api/client';
import {
  AddReaction,
  DeleteMessage,
  EditMessage,
  History,
  HistoryAround,
  MarkRoomRead,
  RemoveReaction,
  RoomDetails,
  RoomEvents,
  RoomPresence,
  SendMessage,
  SetTyping,
} from '../api/operations';
import type { RoomEventsSubscription, RoomFieldsFragment, UserFieldsFragment } from '../gql/graphql';
import { describe, listOf, t } from '../i18n';
import type { Bus } from './bus';
import { Composer } from './Composer';
import { GroupSettings, type About } from './GroupSettings';
import { useLive } from './live';
import { MessageRow, Quote, type MessageActions } from './MessageRow';
import { ErrorLine, dayLabel, dayOf, displayName } from './parts';
import { PresenceDot, usePresenceBook } from './presence';
import {
  dropMembership,
  putMembership,
  readPositions,
  replaceMessage,
  withHeld,
  type Membership,
  type Message,
} from './roomState';
import { roomTitle } from './RoomList';
import { useLink } from './session';

type RoomEvent = RoomEventsSubscription['roomEvents'];

/** A message of ours the room has not delivered back to us yet. */
interface Outgoing {
  clientId: string;
  content: string;
  replyTo: Message | null;
  state: 'pending' | 'sent' | 'failed';
  error?: CombinedError;
  /** A network failure is worth retrying by itself; a refusal is not. */
  retriable?: boolean;
}

const PAGE = 30;
/** Messages shown on either side of one the room opens at. */
const AROUND = 15;
/** One sender's messages closer together than this share one name and avatar. */
const RUN_MS = 5 * 60_000;
/** Someone whose typing we stop hearing about has stopped: the server's
 * own lapse, for when its `typing: false` is lost with a connection. */
const TYPING_LAPSE_MS = 6_000;
/** Wait this long on what is in view before saying it was read. */
const READ_DELAY_MS = 300;

interface Props {
  room: RoomFieldsFragment;
  viewer: UserFieldsFragment;
  inbox: Bus<Message>;
  /** A message to open the room at, and to go to whenever another is given. */
  focus: Message | null;
  /** The room changed on the server (read, renamed): show it anew. */
  onRoomChanged(): void;
  /** The viewer is no longer in the room; `why` says how. */
  onGone(why: string): void;
}

export function ChatView({ room, viewer, inbox, focus, onRoomChanged, onGone }: Props) {
  const client = useClient();
  const { generation } = useLink();
  const [messages, setMessages] = useState<Message[]>([]);
  // The messages shown, for what reads them outside a render.
  const messagesNow = useRef(messages);
  messagesNow.current = messages;
  const [memberships, setMemberships] = useState<Membership[]>([]);
  const [about, setAbout] = useState<About>({ name: room.name, info: room.info });
  const [typers, setTyper] = useTypers(viewer);
  const [outbox, setOutbox] = useState<Outgoing[]>([]);
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [settings, setSettings] = useState(false);
  const [hasOlder, setHasOlder] = useState(false);
  // Whether messages newer than those shown exist, and, while they do, the
  // messages that came live meanwhile.
  const [hasNewer, setHasNewer] = useState(false);
  const newer = useRef(false);
  const held = useRef(new Map<string, Message>());
  const [highlighted, setHighlighted] = useState<string | null>(null);
  // The cursor of a message to bring into view once it shows.
  const landOn = useRef<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<CombinedError | null>(null);
  // The last event seen, or before any the newest message: where a
  // resumed subscription starts.
  const lastCursor = useRef<string | null>(null);
  const list = useRef<HTMLDivElement>(null);
  // Distance from the bottom to keep when older messages are put on top.
  const keepFromBottom = useRef<number | null>(null);
  // Whether the reader is at the bottom, as when the room opens.
  const atBottom = useRef(true);
  // The first word on why the viewer is out stands: the end of the
  // subscription that follows "you were removed" finds no room either.
  const out = useRef(false);
  const gone = useCallback(
    (why: string) => {
      if (out.current) return;
      out.current = true;
      onGone(why);
    },
    [onGone],
  );

  /** A message's current state: new ones go after those shown, shown
   * ones are replaced; one older than the history loaded so far only
   * updates the quotes of it, and paging back brings the rest. */
  const receive = useCallback(
    (message: Message) => {
      const holding = newer.current;
      if (holding) held.current.set(message.identity, message);
      setMessages((shown) => {
        const oldest = shown[0];
        if (shown.some((m) => m.identity === message.identity)) return replaceMessage(shown, message);
        if (oldest && Date.parse(message.createdAt) < Date.parse(oldest.createdAt)) return replaceMessage(shown, message);
        return holding ? replaceMessage(shown, message) : [...shown, message];
      });
      if (message.sender.identity === viewer.identity && message.clientId) {
        setOutbox((queued) => queued.filter((item) => item.clientId !== message.clientId));
      }
    },
    [viewer.identity],
  );

  const loadPage = useCallback(
    async (before: string | null) => {
      const result = await client.query(History, { roomIdentity: room.identity, last: PAGE, before }).toPromise();
      if (result.error) setError(result.error);
      const page = result.data?.messages;
      if (!page) return;
      const older = page.edges.map((edge) => edge.node);
      lastCursor.current ??= older[older.length - 1]?.cursor ?? null;
      if (before !== null && list.current) {
        keepFromBottom.current = list.current.scrollHeight - list.current.scrollTop;
      }
      setMessages((shown) => [...older.filter((m) => !shown.some((s) => s.identity === m.identity)), ...shown]);
      setHasOlder(page.pageInfo.hasPreviousPage);
    },
    [client, room.identity],
  );

  /** The history shown reaches the newest message: what was held back
   * goes in after it. */
  const reachNewest = useCallback((): Message[] => {
    const kept = [...held.current.values()];
    held.current.clear();
    newer.current = false;
    setHasNewer(false);
    return kept;
  }, []);

  /** Back to the newest messages, as the room opens. */
  const showLatest = useCallback(async () => {
    const result = await client.query(History, { roomIdentity: room.identity, last: PAGE }).toPromise();
    if (result.error) setError(result.error);
    const page = result.data?.messages;
    if (!page) return;
    atBottom.current = true;
    setHighlighted(null);
    setHasOlder(page.pageInfo.hasPreviousPage);
    setMessages(withHeld(page.edges.map((edge) => edge.node), reachNewest()));
  }, [client, room.identity, reachNewest]);

  /** The next page of messages after those shown. */
  const loadNewer = useCallback(async () => {
    const end = messagesNow.current[messagesNow.current.length - 1];
    if (!end) return;
    const result = await client.query(History, { roomIdentity: room.identity, first: PAGE, after: end.cursor }).toPromise();
    if (result.error) setError(result.error);
    const page = result.data?.messages;
    if (!page) return;
    const next = page.edges.map((edge) => edge.node);
    const kept = page.pageInfo.hasNextPage ? [] : reachNewest();
    // The reader stays where they are, to read on.
    atBottom.current = false;
    setMessages((shown) => withHeld([...shown, ...next.filter((m) => !shown.some((s) => s.identity === m.identity))], kept));
  }, [client, room.identity, reachNewest]);

  /** Show `target`, highlighted: where it is, if shown; else the history
   * around it, holding back what comes live meanwhile. */
  const land = useCallback(
    async (target: Message) => {
      setHighlighted(target.identity);
      atBottom.current = false;
      landOn.current = target.cursor;
      if (messagesNow.current.some((m) => m.identity === target.identity)) {
        bringIntoView(list.current, landOn);
        return;
      }
      held.current.clear();
      newer.current = true;
      const result = await client
        .query(HistoryAround, { roomIdentity: room.identity, identity: target.identity, cursor: target.cursor, count: AROUND })
        .toPromise();
      if (!result.data) {
        // What is shown stays, with the way to the newest.
        setError(result.error ?? null);
        landOn.current = null;
        setHasNewer(true);
        return;
      }
      const { older, message, newer: after } = result.data;
      const around = [...older.edges.map((edge) => edge.node), message ?? target, ...after.edges.map((edge) => edge.node)];
      setHasOlder(older.pageInfo.hasPreviousPage);
      if (after.pageInfo.hasNextPage) {
        setHasNewer(true);
        setMessages(around);
      } else {
        setMessages(withHeld(around, reachNewest()));
      }
    },
    [client, room.identity, reachNewest],
  );

  /** Members, read positions and who is typing, as the server has them
   * now, and the cursor of the room's newest change when they were read:
   * with nothing seen yet, the room's events follow from there, so that a
   * change made while the room loads is not missed (an event seen twice
   * changes nothing). No room at all means the viewer is no longer in it.
   * A server shutting down answers with an error, or not at all: that is
   * no leaving, and the link's state already tells that it is away. */
  const loadDetails = useCallback(async () => {
    const result = await client.query(RoomDetails, { identity: room.identity }).toPromise();
    if (result.error?.graphQLErrors.length) setError(result.error);
    if (!result.data) return;
    const details = result.data.room;
    if (!details) {
      gone(t('roomGone'));
      return;
    }
    lastCursor.current ??= details.eventCursor;
    setAbout({ name: details.name, info: details.info });
    setMemberships(details.memberships);
    details.typing.forEach((user) => setTyper(user, true));
  }, [client, room.identity, gone, setTyper]);

  // The message the room opened at, then each one given after.
  const landed = useRef(focus);
  useEffect(() => {
    void (async () => {
      await loadDetails();
      const target = landed.current;
      if (target) await land(target);
      else await loadPage(null);
      setLoaded(true);
    })();
  }, [loadPage, loadDetails, land]);
  useEffect(() => {
    if (!loaded || !focus || focus === landed.current) return;
    landed.current = focus;
    void land(focus);
  }, [loaded, focus, land]);

  /** Whether each member is online now; the presence subscription says
   * each change after this. */
  const presence = usePresenceBook();
  const loadPresence = useCallback(async () => {
    const result = await client.query(RoomPresence, { identity: room.identity }).toPromise();
    result.data?.room?.members.forEach((member) => presence.put(member.identity, member.presence));
  }, [client, room.identity, presence]);
  useEffect(() => {
    void loadPresence();
  }, [loadPresence]);
  // Changes while the socket was down went unheard: ask again.
  useEffect(() => {
    if (generation > 1) void loadPresence();
  }, [generation, loadPresence]);

  const apply = (event: RoomEvent) => {
    if ('cursor' in event) lastCursor.current = event.cursor;
    switch (event.__typename) {
      case 'MessagePosted':
      case 'MessageEdited':
      case 'MessageDeleted':
      case 'ReactionsChanged':
        receive(event.message);
        break;
      case 'MemberJoined':
        setMemberships((shown) => putMembership(shown, event.membership));
        void loadPresence();
        break;
      case 'MemberRoleChanged':
      case 'ReadReceipt':
        setMemberships((shown) => putMembership(shown, event.membership));
        break;
      case 'MemberLeft':
        if (event.user.identity === viewer.identity) {
          gone(
            event.removedBy
              ? t('youWereRemoved', { by: displayName(event.removedBy), room: about.name })
              : t('youLeft', { room: about.name }),
          );
        } else {
          setMemberships((shown) => dropMembership(shown, event.user));
        }
        break;
      case 'RoomUpdated':
        setAbout({ name: event.room.name, info: event.room.info });
        onRoomChanged();
        break;
      case 'Typing':
        setTyper(event.user, event.typing);
        break;
    }
  };

  useLive(RoomEvents, loaded ? room.identity : null, {
    async variables() {
      // A room that shows nothing has no cursor to resume from: read what
      // it holds now first, so what happened while we were away still shows.
      if (lastCursor.current === null) {
        await loadDetails();
        await loadPage(null);
      }
      return { roomIdentity: room.identity, after: lastCursor.current };
    },
    onData: (data) => apply(data.roomEvents),
    onError(failed) {
      setError(failed);
      void loadDetails();
    },
    // Leaving and being removed end the subscription after the event that
    // says so; a deleted room, or a server going down, ends it without one.
    onEnd: () => void loadDetails(),
  });

  // The inbox was subscribed before this room was opened; while the room
  // shows nothing yet, it covers the moment before our own subscription is
  // in place. Once there is a cursor, the room's events alone are
  // gap-free, and mixing in a second stream could move the cursor past an
  // event not yet received.
  useEffect(
    () =>
      inbox.listen((message) => {
        if (message.roomIdentity === room.identity && lastCursor.current === null) {
          lastCursor.current = message.cursor;
          receive(message);
        }
      }),
    [inbox, room.identity, receive],
  );

  // Open at the newest message and keep the bottom in view as messages
  // arrive, unless the reader has scrolled up; keep the reader's place
  // when older messages are added.
  useLayoutEffect(() => {
    const element = list.current;
    if (!element) return;
    if (landOn.current !== null) {
      bringIntoView(element, landOn);
    } else if (keepFromBottom.current !== null) {
      element.scrollTop = element.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = null;
    } else if (atBottom.current) {
      element.scrollTop = element.scrollHeight;
    }
  }, [messages, outbox]);

  // Reading the room marks it read up to the newest message in view, so
  // its badge clears here and on the user's other devices, and the others
  // see the receipt. Only messages from others make it worth saying.
  const [inView, setInView] = useState<string | null>(null);
  const look = useCallback(() => {
    if (list.current && document.visibilityState === 'visible') setInView(newestInView(list.current));
  }, []);
  const scrolled = () => {
    const element = list.current;
    if (element) atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 120;
    look();
  };
  useEffect(look, [look, messages]);
  useEffect(() => {
    document.addEventListener('visibilitychange', look);
    return () => document.removeEventListener('visibilitychange', look);
  }, [look]);
  const marked = useRef<string | null>(null);
  const viewerRead = memberships.find((m) => m.user.identity === viewer.identity)?.lastReadCursor ?? null;
  useEffect(() => {
    if (!loaded || inView === null || inView === marked.current) return;
    const readAt = messages.findIndex((m) => m.cursor === viewerRead);
    const seenAt = messages.findIndex((m) => m.cursor === inView);
    const fresh = messages.slice(readAt + 1, seenAt + 1).some((m) => m.sender.identity !== viewer.identity);
    if (!fresh) return;
    const timer = window.setTimeout(() => {
      marked.current = inView;
      void client.mutation(MarkRoomRead, { roomIdentity: room.identity, upTo: inView }).toPromise().then(onRoomChanged);
    }, READ_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [client, room.identity, loaded, inView, viewerRead, messages, viewer.identity, onRoomChanged]);

  const deliver = useCallback(
    async (item: Outgoing) => {
      const update = (change: Partial<Outgoing>) =>
        setOutbox((queued) => queued.map((q) => (q.clientId === item.clientId ? { ...q, ...change } : q)));
      update({ state: 'pending', error: undefined });
      // The same clientId on every try: the server stores the message once.
      const result = await client
        .mutation(SendMessage, {
          roomIdentity: room.identity,
          content: item.content,
          clientId: item.clientId,
          replyTo: item.replyTo?.identity ?? null,
        })
        .toPromise();
      if (result.error) {
        update({ state: 'failed', error: result.error, retriable: !result.error.graphQLErrors.length });
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
    // What one writes goes after the newest message: show it.
    if (newer.current) void showLatest();
    const item: Outgoing = { clientId: newClientId(), content, replyTo, state: 'pending' };
    setReplyTo(null);
    setOutbox((queued) => [...queued, item]);
    void deliver(item);
  };

  // What a message's buttons do; the change itself shows when its event comes.
  const act = async (answer: Promise<OperationResult>): Promise<boolean> => {
    const { error: failed } = await answer;
    setError(failed ?? null);
    return !failed;
  };
  const actions: MessageActions = {
    reply: setReplyTo,
    edit: (message, content) =>
      act(client.mutation(EditMessage, { messageIdentity: message.identity, content }).toPromise()),
    remove: (message) => act(client.mutation(DeleteMessage, { messageIdentity: message.identity }).toPromise()),
    react: (message, emoji, byViewer) =>
      act(client.mutation(byViewer ? RemoveReaction : AddReaction, { messageIdentity: message.identity, emoji }).toPromise()),
  };
  // Telling others we type is a courtesy: a lost signal only costs a hint,
  // so its failures are not shown.
  const onTyping = (typing: boolean) => void client.mutation(SetTyping, { roomIdentity: room.identity, typing }).toPromise();

  const viewerRole = memberships.find((m) => m.user.identity === viewer.identity)?.role;
  const moderates = room.roomType === 'GROUP' && (viewerRole === 'OWNER' || viewerRole === 'ADMIN');
  const readers = readersAt(messages, memberships, viewer);
  const title = room.roomType === 'GROUP' ? about.name : roomTitle(room, viewer);
  const other = room.roomType === 'PRIVATE' ? room.members.find((member) => member.identity !== viewer.identity) : undefined;
  /** What went wrong, in words for this room: in a PRIVATE room, FORBIDDEN
   * means the other member blocked the viewer (API.md, "Blocking"). */
  const explain = (failed: CombinedError): string =>
    other && isForbidden(failed) ? t('blockedByOther', { name: title }) : describe(failed);

  return (
    <div className="chat" data-testid="chat">
      <header className="chat-header">
        <div>
          <h2>{title}</h2>
          <span className="hint">
            {room.roomType === 'GROUP'
              ? `${t('members', { count: memberships.length || room.memberCount })}${about.info ? ` · ${about.info}` : ''}`
              : `#${room.number}`}
          </span>
          {other && <PresenceDot identity={other.identity} spelled />}
        </div>
        {room.roomType === 'GROUP' && (
          <button className="quiet" aria-expanded={settings} onClick={() => setSettings(!settings)} data-testid="settings">
            {t('groupSettings')}
          </button>
        )}
      </header>
      <div className="chat-body">
        <div className="chat-main">
          <div className="messages" ref={list} onScroll={scrolled} data-testid="messages">
            {hasOlder && (
              <button className="quiet older" data-testid="older" onClick={() => void loadPage(messages[0]?.cursor ?? null)}>
                {t('older')}
              </button>
            )}
            {loaded && messages.length === 0 && outbox.length === 0 && <p className="hint">{t('noMessages')}</p>}
            {messages.map((message, at) => {
              const before = messages[at - 1];
              const newDay = !before || dayOf(before.createdAt) !== dayOf(message.createdAt);
              const first =
                !before ||
                newDay ||
                before.sender.identity !== message.sender.identity ||
                Date.parse(message.createdAt) - Date.parse(before.createdAt) > RUN_MS;
              const mine = message.sender.identity === viewer.identity;
              return (
                <Fragment key={message.identity}>
                  {newDay && (
                    <div className="day" role="separator" data-testid="day">
                      <span>{dayLabel(message.createdAt)}</span>
                    </div>
                  )}
                  <MessageRow
                    message={message}
                    mine={mine}
                    first={first}
                    readers={readers.get(at) ?? []}
                    mayDelete={mine || moderates}
                    highlighted={message.identity === highlighted}
                    actions={actions}
                  />
                </Fragment>
              );
            })}
            {hasNewer && (
              <div className="newer">
                <button className="quiet" data-testid="newer" onClick={() => void loadNewer()}>
                  {t('newer')}
                </button>
                <button className="quiet" data-testid="latest" onClick={() => void showLatest()}>
                  {t('latest')}
                </button>
              </div>
            )}
            {outbox.map((item) => (
              <div key={item.clientId} className={`message mine ${item.state}`} data-testid="outgoing">
                <div className="message-body">
                  <div className="bubble">
                    {item.replyTo && (
                      <Quote sender={item.replyTo.sender} content={item.replyTo.content} deleted={Boolean(item.replyTo.deletedAt)} />
                    )}
                    <p>{item.content}</p>
                    <span className="meta">
                      {item.state === 'failed' ? (
                        <>
                          <span role="alert">
                            {t('failed')}: {item.error && explain(item.error)}
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
              </div>
            ))}
          </div>
          <p className="typing" aria-live="polite" data-testid="typing">
            {typingLine(typers)}
          </p>
          <ErrorLine error={error} explain={explain} />
          <Composer replyTo={replyTo} onCancelReply={() => setReplyTo(null)} onSend={send} onTyping={onTyping} />
        </div>
        {settings && room.roomType === 'GROUP' && (
          <GroupSettings
            roomIdentity={room.identity}
            about={about}
            memberships={memberships}
            viewer={viewer}
            onLeft={() => gone(t('youLeft', { room: about.name }))}
            onClose={() => setSettings(false)}
          />
        )}
      </div>
    </div>
  );
}

/** Others who are typing, each forgotten when the server's lapse would
 * have ended it; the viewer's own typing (echoed to their sockets too) is
 * left out. */
function useTypers(viewer: UserFieldsFragment): [UserFieldsFragment[], (user: UserFieldsFragment, typing: boolean) => void] {
  const [typers, setTypers] = useState<UserFieldsFragment[]>([]);
  const lapses = useRef(new Map<string, number>());
  const set = useCallback(
    (user: UserFieldsFragment, typing: boolean) => {
      if (user.identity === viewer.identity) return;
      window.clearTimeout(lapses.current.get(user.identity));
      lapses.current.delete(user.identity);
      const others = (shown: UserFieldsFragment[]) => shown.filter((u) => u.identity !== user.identity);
      if (!typing) {
        setTypers(others);
        return;
      }
      setTypers((shown) => (shown.some((u) => u.identity === user.identity) ? shown : [...shown, user]));
      lapses.current.set(
        user.identity,
        window.setTimeout(() => {
          lapses.current.delete(user.identity);
          setTypers(others);
        }, TYPING_LAPSE_MS),
      );
    },
    [viewer.identity],
  );
  useEffect(() => {
    const timers = lapses.current;
    return () => timers.forEach((timer) => window.clearTimeout(timer));
  }, []);
  return [typers, set];
}

function typingLine(typers: UserFieldsFragment[]): string {
  const [only] = typers;
  if (typers.length === 0) return '';
  if (typers.length === 1 && only) return t('typingOne', { name: displayName(only) });
  if (typers.length <= 3) return t('typingSome', { names: listOf(typers.map(displayName)) });
  return t('typingMany', { count: typers.length });
}

/** The members other than the viewer under the message each has read up to. */
function readersAt(messages: Message[], memberships: Membership[], viewer: UserFieldsFragment): Map<number, UserFieldsFragment[]> {
  const positions = readPositions(messages, memberships);
  const at = new Map<number, UserFieldsFragment[]>();
  memberships.forEach((m) => {
    const position = positions.get(m.user.identity) ?? -1;
    if (m.user.identity === viewer.identity || position < 0) return;
    at.set(position, [...(at.get(position) ?? []), m.user]);
  });
  return at;
}

/** Scroll the message whose cursor `target` holds to the middle of `list`,
 * once it shows, and forget it. */
function bringIntoView(list: HTMLElement | null, target: { current: string | null }): void {
  if (!list || target.current === null) return;
  const row = list.querySelector(`[data-cursor="${CSS.escape(target.current)}"]`);
  if (!row) return;
  row.scrollIntoView({ block: 'center' });
  target.current = null;
}

/** The cursor of the newest message at least partly in view. */
function newestInView(list: HTMLElement): string | null {
  const bottom = list.getBoundingClientRect().bottom;
  const rows = [...list.querySelectorAll<HTMLElement>('[data-cursor]')].reverse();
  return rows.find((row) => row.getBoundingClientRect().top < bottom)?.dataset.cursor ?? null;
}

/** Unique enough for an idempotency key, and available on plain http
 * (crypto.randomUUID needs a secure context). */
function newClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
