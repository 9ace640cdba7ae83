import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { language } from './i18n';
import './styles.css';
import { AuthScreen } from './ui/AuthScreen';
import { Home } from './ui/Home';
import { SessionProvider, useSession } from './ui/session';

function App() {
  const { token } = useSession();
  return token ? <Home key={token} /> : <AuthScreen />;
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
