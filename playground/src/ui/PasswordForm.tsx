import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';

import { checksPassword } from '../api/client';
import { ChangePassword } from '../api/operations';
import { t } from '../i18n';
import { ErrorLine } from './parts';
import { useSession } from './session';

/**
 * Change one's password. The server ends every other session of the user
 * at once and lets this one go on; the server's own message shows on
 * failure (a wrong current password, a new one too short or too long).
 */
export function PasswordForm() {
  const { refreshNow } = useSession();
  const [oldPassword, setOldPassword] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [result, change] = useMutation(ChangePassword);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    // A wrong current password is UNAUTHENTICATED: an answer for this form,
    // not a reason to sign out.
    const answer = await change({ oldPassword, newPassword }, checksPassword);
    if (answer.data?.changePassword) {
      setOldPassword('');
      setNewPassword('');
      // The token in hand was issued under the old password and counts only
      // while the server remembers that this session made the change; one
      // issued now carries the new password.
      refreshNow();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-label={t('changePassword')} data-testid="password-form">
      <h3>{t('changePassword')}</h3>
      <label>
        {t('oldPassword')}
        <input
          name="oldPassword"
          type="password"
          value={oldPassword}
          onChange={(e) => setOldPassword(e.target.value)}
          autoComplete="current-password"
          required
        />
      </label>
      <label>
        {t('newPassword')}
        <input
          name="newPassword"
          type="password"
          value={newPassword}
          onChange={(e) => setNewPassword(e.target.value)}
          autoComplete="new-password"
          required
        />
      </label>
      <ErrorLine error={result.error} />
      {result.data?.changePassword && !result.error && <p role="status">{t('passwordChanged')}</p>}
      <button type="submit" disabled={result.fetching}>
        {t('changePassword')}
      </button>
    </form>
  );
}
