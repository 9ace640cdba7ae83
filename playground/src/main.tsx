import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { language } from './i18n';
import './styles.css';
import { AuthScreen } from './ui/AuthScreen';
import { Home } from './ui/Home';
import { SessionProvider, useSession } from './ui/session';

function App() {
  const { signedIn, epoch } = useSession();
  // Keyed by the sign-in, not the token: a refreshed token keeps the screen as it is.
  return signedIn ? <Home key={epoch} /> : <AuthScreen />;
}

const root = document.getElementById('root');
if (root) {
  document.documentElement.lang = language;
  createRoot(root).render(
    <StrictMode>
      <SessionProvider>
        <App />
      </SessionProvider>
    </StrictMode>,
  );
}
