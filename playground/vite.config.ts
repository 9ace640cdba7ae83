import { resolve } from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * Two pages, both served by the chatroom server itself from this build's
 * output: the chat client at / and GraphiQL at /graphiql. Everything,
 * GraphiQL's editor and its web workers included, is bundled here, so
 * neither page needs the internet.
 */
export default defineConfig({
  plugins: [react()],
  // GraphiQL's editor runs its language services in module workers.
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // GraphiQL's editor (Monaco) is large by nature; it is only loaded on
    // /graphiql, never by the chat client.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        graphiql: resolve(import.meta.dirname, 'graphiql.html'),
      },
    },
  },
  server: {
    // `npm run dev` works against a server started with the README's run
    // command.
    proxy: {
      '/graphql': { target: 'http://127.0.0.1:8080', ws: true },
    },
  },
});
