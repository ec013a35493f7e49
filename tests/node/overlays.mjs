// Builds delivery URLs with layers through the Node SDK's helper.buildSrc: reads
// [{overlay, position}] as JSON from IK_OVERLAYS, prints the URLs as a JSON list.
import ImageKit from '@imagekit/nodejs';

const client = new ImageKit({ privateKey: 'private_test_key', maxRetries: 0 });
const cases = JSON.parse(process.env.IK_OVERLAYS);
const urls = cases.map(({ overlay, position }) => client.helper.buildSrc({
  src: '/blue.png',
  urlEndpoint: process.env.IK_ENDPOINT,
  transformation: [{ overlay }, { format: 'png' }],
  transformationPosition: position,
}));
console.log(JSON.stringify(urls));
