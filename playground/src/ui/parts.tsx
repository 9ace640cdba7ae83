/** Small pieces every screen uses. */
import type { CombinedError } from 'urql';

import type { UserFieldsFragment } from '../gql/graphql';
import { describe } from '../i18n';

export function ErrorLine({ error }: { error: CombinedError | undefined | null }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {describe(error)}
    </p>
  );
}

export const displayName = (user: UserFieldsFragment): string => user.nickname || user.username;

/** Initials on a coloured disc; the avatar image on top when it loads
 * (it may live on a host this browser cannot reach). */
export function Avatar({ name, image }: { name: string; image?: string | null }) {
  const hue = [...name].reduce((sum, char) => sum + (char.codePointAt(0) ?? 0), 0) % 360;
  return (
    <span className="avatar" style={{ background: `hsl(${hue} 55% 45%)` }} aria-hidden="true">
      {name.slice(0, 1).toUpperCase()}
      {image && <img src={image} alt="" onError={(event) => event.currentTarget.remove()} />}
    </span>
  );
}

export function time(createdAt: string): string {
  const date = new Date(createdAt);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
