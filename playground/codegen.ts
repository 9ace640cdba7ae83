import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Types for every operation in src/, generated from the server's own
 * schema.graphql (the file a test keeps equal to what the server serves), so
 * a field renamed or removed on the server fails `tsc` here.
 */
const config: CodegenConfig = {
  schema: '../schema.graphql',
  documents: ['src/**/*.{ts,tsx}', '!src/gql/**'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      config: {
        scalars: { DateTime: 'string' },
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
