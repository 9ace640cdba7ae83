import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useMutation } from 'urql';

import { SendLobbyMessage } from '../api/operations';
import { t } from '../i18n';
import type { LobbyMessage } from './Home';
import { Avatar, ErrorLine, displayName, time } from './parts';

/** The server-wide channel: live only, so it shows what arrived since sign-in. */
export function LobbyView({ messages }: { messages: LobbyMessage[] }) {
  const [draft, setDraft] = useState('');
  const [sent, send] = useMutation(SendLobbyMessage);
  const list = useRef<HTMLDivElement>(null);
  useEffect(() => {
    list.current?.scrollTo({ top: list.current.scrollHeight });
  }, [messages]);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!draft.trim()) return;
    const answer = await send({ content: draft });
    if (answer.data) setDraft('');
  };
  return (
    <div className="chat" data-testid="lobby">
      <header className="chat-header">
        <h2>{t('lobby')}</h2>
      </header>
      <div className="messages" ref={list}>
        {messages.map((message) => (
          <div key={message.key} className="message" data-testid="lobby-message">
            <Avatar name={displayName(message.sender)} image={message.sender.avatar} />
            <div className="bubble">
              <span className="sender">{displayName(message.sender)}</span>
              <p>{message.content}</p>
              <time className="meta">{time(message.createdAt)}</time>
            </div>
          </div>
        ))}
      </div>
      <ErrorLine error={sent.error} />
      <form className="send" onSubmit={submit}>
        <input
          name="message"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder={t('typeMessage')}
          aria-label={t('typeMessage')}
        />
        <button type="submit" disabled={sent.fetching}>
          {t('send')}
        </button>
      </form>
    </div>
  );
}
