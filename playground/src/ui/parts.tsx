/** Small pieces every screen uses. */
import { useState } from 'react';
import type { CombinedError } from 'urql';

import type { UserFieldsFragment } from '../gql/graphql';
import { describe, t } from '../i18n';

interface ErrorLineProps {
  error: CombinedError | undefined | null;
  /** Words of the view's own for what the server's alone would not make clear. */
  explain?(error: CombinedError): string;
}

export function ErrorLine({ error, explain = describe }: ErrorLineProps) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {explain(error)}
    </p>
  );
}

export const displayName = (user: UserFieldsFragment): string => user.nickname || user.username;

/** Initials on a coloured disc; the avatar image on top when it loads
 * (it may live on a host this browser cannot reach). */
export function Avatar({ name, image, small }: { name: string; image?: string | null; small?: boolean }) {
  const hue = [...name].reduce((sum, char) => sum + (char.codePointAt(0) ?? 0), 0) % 360;
  return (
    <span className={small ? 'avatar small' : 'avatar'} style={{ background: `hsl(${hue} 55% 45%)` }} aria-hidden="true">
      {name.slice(0, 1).toUpperCase()}
      {image && <img src={image} alt="" onError={(event) => event.currentTarget.remove()} />}
    </span>
  );
}

export function time(createdAt: string): string {
  const date = new Date(createdAt);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? clock(createdAt)
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** The time of day alone, where a date divider above says the day. */
export const clock = (createdAt: string): string =>
  new Date(createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** Local calendar day, to tell where one day's messages end. */
export const dayOf = (createdAt: string): string => new Date(createdAt).toDateString();

/** A date divider's words: today, yesterday, or the date (with its year
 * when not this one). */
export function dayLabel(createdAt: string): string {
  const date = new Date(createdAt);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return t('today');
  if (date.toDateString() === yesterday.toDateString()) return t('yesterday');
  return date.toLocaleDateString([], {
    weekday: 'short',
    month: 'long',
    day: 'numeric',
    ...(date.getFullYear() === today.getFullYear() ? {} : { year: 'numeric' }),
  });
}

interface ConfirmProps {
  label: string;
  /** The question asked before doing it. */
  question: string;
  onConfirm(): void;
  testId: string;
}

/** A button for what cannot be undone: a second click, on the question it
 * asks, does it. */
export function ConfirmButton({ label, question, onConfirm, testId }: ConfirmProps) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="quiet danger" onClick={() => setAsking(true)} data-testid={testId}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        className="danger-solid"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
        data-testid={`${testId}-confirm`}
      >
        {label}
      </button>
      <button type="button" className="quiet" onClick={() => setAsking(false)}>
        {t('cancel')}
      </button>
    </span>
  );
}
