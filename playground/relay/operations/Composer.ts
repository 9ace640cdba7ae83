/** Sending a message; the answer updates the store by its id. */
import { graphql } from 'relay-runtime';

export const composerSendMessageMutation = graphql`
  mutation ComposerSendMessageMutation($roomIdentity: ID!, $content: String!, $clientId: String) {
    sendMessage(roomIdentity: $roomIdentity, content: $content, clientId: $clientId) {
      id
      ...MessageItem_message
    }
  }
`;
