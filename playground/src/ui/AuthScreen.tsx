import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';

import { Login, Register, SendEmailCode } from '../api/operations';
import { t } from '../i18n';
import { useSession } from './session';
import { ErrorLine } from './parts';

export function AuthScreen() {
  const { notice } = useSession();
  const [mode, setMode] = useState<'login' | 'register'>('login');
  return (
    <main className="auth">
      <h1>{t('appName')}</h1>
      {notice && (
        <p className="notice" role="status" data-testid="session-notice">
          {notice}
        </p>
      )}
      <div className="tabs" role="tablist">
        <button role="tab" aria-selected={mode === 'login'} onClick={() => setMode('login')} data-testid="auth-login">
          {t('login')}
        </button>
        <button
          role="tab"
          aria-selected={mode === 'register'}
          onClick={() => setMode('register')}
          data-testid="auth-register"
        >
          {t('register')}
        </button>
      </div>
      {mode === 'login' ? <LoginForm /> : <RegisterForm />}
      <p className="hint">
        <a href="/graphiql">GraphiQL</a>
      </p>
    </main>
  );
}

function LoginForm() {
  const { signIn } = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [result, login] = useMutation(Login);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const answer = await login({ username: username.trim(), password });
    if (answer.data) signIn(answer.data.login);
  };
  return (
    <form className="card" onSubmit={submit} aria-label={t('login')} data-testid="login-form">
      <label>
        {t('username')}
        <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" required />
      </label>
      <label>
        {t('password')}
        <input
          name="password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="current-password"
          required
        />
      </label>
      <ErrorLine error={result.error} />
      <button type="submit" disabled={result.fetching}>
        {t('login')}
      </button>
    </form>
  );
}

function RegisterForm() {
  const { signIn } = useSession();
  const [email, setEmail] = useState('');
  const [code, setCode] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [nickname, setNickname] = useState('');
  const [codeResult, sendCode] = useMutation(SendEmailCode);
  const [result, register] = useMutation(Register);

  const requestCode = async () => {
    await sendCode({ email: email.trim() });
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const answer = await register({
      input: {
        email: email.trim(),
        code: code.trim(),
        username: username.trim(),
        password,
        nickname: nickname.trim() || null,
      },
    });
    if (answer.data) signIn(answer.data.register);
  };
  const sent = codeResult.data?.sendEmailCode;
  return (
    <form className="card" onSubmit={submit} aria-label={t('register')} data-testid="register-form">
      <label>
        {t('email')}
        <input name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="email" required />
      </label>
      <button type="button" onClick={requestCode} data-testid="send-code" disabled={codeResult.fetching || !email.trim()}>
        {t('sendCode')}
      </button>
      {sent && (
        <p className="hint" role="status">
          {t('codeSent', { email: email.trim(), minutes: Math.round(sent.expiresIn / 60) })}
        </p>
      )}
      <ErrorLine error={codeResult.error} />
      <label>
        {t('code')}
        <input name="code" value={code} onChange={(e) => setCode(e.target.value)} inputMode="numeric" autoComplete="one-time-code" required />
      </label>
      <label>
        {t('username')}
        <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" required />
      </label>
      <label>
        {t('password')}
        <input
          name="password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="new-password"
          required
        />
      </label>
      <label>
        {t('nickname')}
        <input name="nickname" value={nickname} onChange={(e) => setNickname(e.target.value)} />
      </label>
      <ErrorLine error={result.error} />
      <button type="submit" disabled={result.fetching}>
        {t('register')}
      </button>
    </form>
  );
}
