/**
 * The send box: the draft, the message it answers, and the typing signal.
 * While the draft has text, setTyping(true) goes out at most once every
 * few seconds (the server lets it lapse 6 s after the last one, so a pause
 * in typing shows as one); sending or emptying the draft, or leaving the
 * room, says setTyping(false) at once.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';

import { t } from '../i18n';
import { Quote } from './MessageRow';
import { displayName } from './parts';
import type { Message } from './roomState';

const TYPING_EVERY_MS = 3_000;

interface Props {
  replyTo: Message | null;
  onCancelReply(): void;
  onSend(content: string): void;
  onTyping(typing: boolean): void;
}

export function Composer({ replyTo, onCancelReply, onSend, onTyping }: Props) {
  const [draft, setDraft] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  // When setTyping(true) last went out; 0 while the others see us not typing.
  const typingSince = useRef(0);
  const latestOnTyping = useRef(onTyping);
  latestOnTyping.current = onTyping;

  const signal = (typing: boolean) => {
    if (typing && Date.now() - typingSince.current >= TYPING_EVERY_MS) {
      typingSince.current = Date.now();
      onTyping(true);
    } else if (!typing && typingSince.current) {
      typingSince.current = 0;
      onTyping(false);
    }
  };
  useEffect(
    () => () => {
      if (typingSince.current) latestOnTyping.current(false);
    },
    [],
  );
  // Choosing a message to answer starts writing the answer.
  useEffect(() => {
    if (replyTo) input.current?.focus();
  }, [replyTo]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!draft.trim()) return;
    onSend(draft);
    setDraft('');
    signal(false);
  };
  return (
    <form className="send" onSubmit={submit}>
      {replyTo && (
        <div className="replying" data-testid="replying">
          <span className="hint">{t('replyingTo', { name: displayName(replyTo.sender) })}</span>
          <Quote sender={replyTo.sender} content={replyTo.content} deleted={Boolean(replyTo.deletedAt)} />
          <button type="button" className="quiet" aria-label={t('cancelReply')} title={t('cancelReply')} onClick={onCancelReply}>
            ×
          </button>
        </div>
      )}
      <div className="row">
        <textarea
          ref={input}
          name="message"
          value={draft}
          aria-label={t('typeMessage')}
          placeholder={t('typeMessage')}
          rows={2}
          onChange={(e) => {
            setDraft(e.target.value);
            signal(Boolean(e.target.value.trim()));
          }}
          onKeyDown={(event) => {
            if (event.key === 'Escape' && replyTo) onCancelReply();
            if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) submit(event);
          }}
        />
        <button type="submit">{t('send')}</button>
      </div>
    </form>
  );
}
