/**
 * One message of a room as chat apps show it: the quote of what it
 * answers, its text (or a tombstone once deleted), reactions as chips,
 * the members who have read up to it, and, on hover or focus, what the
 * viewer may do with it.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';

import type { UserFieldsFragment } from '../gql/graphql';
import { listOf, t } from '../i18n';
import type { Message } from './roomState';
import { Avatar, ConfirmButton, clock, displayName } from './parts';

/** A handful of the emoji people use most; the server takes any emoji. */
const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🎉', '🙏', '🔥'];

/** What the viewer can do to a message; each answers whether it worked. */
export interface MessageActions {
  reply(message: Message): void;
  edit(message: Message, content: string): Promise<boolean>;
  remove(message: Message): Promise<boolean>;
  react(message: Message, emoji: string, byViewer: boolean): Promise<boolean>;
}

interface Props {
  message: Message;
  mine: boolean;
  /** First of a run of one sender's messages: the name and avatar show once. */
  first: boolean;
  /** Others who have read up to this message and no further. */
  readers: UserFieldsFragment[];
  mayDelete: boolean;
  /** The message the room was opened at. */
  highlighted: boolean;
  actions: MessageActions;
}

export function MessageRow({ message, mine, first, readers, mayDelete, highlighted, actions }: Props) {
  const [editing, setEditing] = useState(false);
  const deleted = Boolean(message.deletedAt);
  const classes = ['message', mine && 'mine', !first && 'continued', deleted && 'deleted', highlighted && 'highlighted']
    .filter(Boolean)
    .join(' ');
  const react = (emoji: string) => {
    const byViewer = message.reactions.some((reaction) => reaction.emoji === emoji && reaction.byViewer);
    void actions.react(message, emoji, byViewer);
  };
  return (
    <div className={classes} data-testid="message" data-cursor={message.cursor} aria-current={highlighted || undefined}>
      {!mine && (first ? <Avatar name={displayName(message.sender)} image={message.sender.avatar} /> : <span className="avatar-space" />)}
      <div className="message-body">
        <div className="bubble">
          {!mine && first && <span className="sender">{displayName(message.sender)}</span>}
          {message.replyTo && (
            <Quote sender={message.replyTo.sender} content={message.replyTo.content} deleted={Boolean(message.replyTo.deletedAt)} />
          )}
          {deleted ? (
            <p className="tombstone" data-testid="tombstone">
              {t('messageDeleted')}
            </p>
          ) : editing ? (
            <EditBox
              initial={message.content}
              onSave={async (content) => {
                if (await actions.edit(message, content)) setEditing(false);
              }}
              onCancel={() => setEditing(false)}
            />
          ) : (
            <p data-testid="content">{message.content}</p>
          )}
          <span className="meta">
            {message.editedAt && !deleted && <span data-testid="edited">{t('edited')} · </span>}
            <time dateTime={message.createdAt} title={new Date(message.createdAt).toLocaleString()}>
              {clock(message.createdAt)}
            </time>
          </span>
        </div>
        {message.reactions.length > 0 && (
          <div className="reactions">
            {message.reactions.map((reaction) => (
              <button
                key={reaction.emoji}
                type="button"
                className={reaction.byViewer ? 'reaction mine' : 'reaction'}
                aria-pressed={reaction.byViewer}
                onClick={() => react(reaction.emoji)}
                data-testid="reaction"
              >
                {reaction.emoji} {reaction.count}
              </button>
            ))}
          </div>
        )}
        {readers.length > 0 && <ReadBy users={readers} />}
      </div>
      {!deleted && !editing && (
        <div className="actions" role="toolbar">
          <EmojiPicker onPick={react} />
          <button type="button" className="link-button" onClick={() => actions.reply(message)} data-testid="reply">
            {t('reply')}
          </button>
          {mine && (
            <button type="button" className="link-button" onClick={() => setEditing(true)} data-testid="edit">
              {t('edit')}
            </button>
          )}
          {mayDelete && (
            <ConfirmButton
              label={t('delete')}
              question={t('deleteMessage')}
              onConfirm={() => void actions.remove(message)}
              testId="delete"
            />
          )}
        </div>
      )}
    </div>
  );
}

interface QuoteProps {
  sender: UserFieldsFragment;
  content: string;
  deleted: boolean;
}

/** The message being answered, in small, above the answer or the send box. */
export function Quote({ sender, content, deleted }: QuoteProps) {
  return (
    <blockquote className="quote" data-testid="quote">
      <span className="sender">{displayName(sender)}</span>
      <span className={deleted ? 'tombstone' : undefined}>{deleted ? t('messageDeleted') : content}</span>
    </blockquote>
  );
}

/** Opens a small menu of emoji; it closes on a pick, Escape or a click elsewhere. */
function EmojiPicker({ onPick }: { onPick(emoji: string): void }) {
  const [open, setOpen] = useState(false);
  const anchor = useRef<HTMLSpanElement>(null);
  useEffect(() => {
    if (!open) return;
    const away = (event: PointerEvent) => {
      if (!anchor.current?.contains(event.target as Node)) setOpen(false);
    };
    document.addEventListener('pointerdown', away);
    return () => document.removeEventListener('pointerdown', away);
  }, [open]);
  return (
    <span className="emoji-anchor" ref={anchor} onKeyDown={(event) => event.key === 'Escape' && setOpen(false)}>
      <button
        type="button"
        className="link-button"
        aria-haspopup="menu"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        data-testid="react"
      >
        {t('react')}
      </button>
      {open && (
        <span className="emoji-picker" role="menu" data-testid="emoji-picker">
          {EMOJI.map((emoji) => (
            <button
              key={emoji}
              type="button"
              role="menuitem"
              onClick={() => {
                setOpen(false);
                onPick(emoji);
              }}
              data-testid="emoji"
            >
              {emoji}
            </button>
          ))}
        </span>
      )}
    </span>
  );
}

/** Read receipts beyond this many show as a count. */
const RECEIPTS_SHOWN = 5;

/** Receipts: the avatars of those who have read this far. */
function ReadBy({ users }: { users: UserFieldsFragment[] }) {
  const label = t('readBy', { names: listOf(users.map(displayName)) });
  return (
    <div className="read-by" role="img" aria-label={label} title={label} data-testid="read-by">
      {users.slice(0, RECEIPTS_SHOWN).map((user) => (
        <Avatar key={user.identity} name={displayName(user)} image={user.avatar} small />
      ))}
      {users.length > RECEIPTS_SHOWN && <span className="hint">+{users.length - RECEIPTS_SHOWN}</span>}
    </div>
  );
}

interface EditProps {
  initial: string;
  onSave(content: string): void;
  onCancel(): void;
}

function EditBox({ initial, onSave, onCancel }: EditProps) {
  const [draft, setDraft] = useState(initial);
  const save = (event: FormEvent) => {
    event.preventDefault();
    if (!draft.trim()) return;
    if (draft === initial) onCancel();
    else onSave(draft);
  };
  return (
    <form className="edit" onSubmit={save} aria-label={t('editMessage')} data-testid="edit-form">
      <textarea
        name="edit"
        value={draft}
        rows={2}
        autoFocus
        aria-label={t('editMessage')}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') onCancel();
          if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) save(event);
        }}
      />
      <div className="row">
        <button type="submit" disabled={!draft.trim()}>
          {t('save')}
        </button>
        <button type="button" className="quiet" onClick={onCancel}>
          {t('cancel')}
        </button>
      </div>
    </form>
  );
}
