// Proves the ImageKit Node SDK loads and builds a client: prints the client's own keys as JSON.
import ImageKit from '@imagekit/nodejs';

const client = new ImageKit({
  privateKey: process.env.IK_PRIVATE_KEY,
  baseURL: process.env.IK_BASE_URL,
  maxRetries: 0,
});
console.log(JSON.stringify(Object.keys(client)));
