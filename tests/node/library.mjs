// Every media library route through ImageKit's Node SDK (@imagekit/nodejs), against a running
// pixelport: IK_BASE_URL, IK_PRIVATE_KEY. Run by tests/test_library_node.py; prints "ok".
import assert from 'node:assert/strict';
import ImageKit, { toFile } from '@imagekit/nodejs';
import { readFileSync } from 'node:fs';

const base = process.env.IK_BASE_URL;
const client = new ImageKit({ privateKey: process.env.IK_PRIVATE_KEY, baseURL: base,
                              maxRetries: 0 });
const photo = readFileSync(process.env.IK_PHOTO);
const other = readFileSync(process.env.IK_OTHER);

async function status(promise) {
  try { await promise; return 200; } catch (error) { return error.status; }
}
async function served(path) { return (await fetch(base + path)).status; }

// Upload (binary, through toFile), then the file is served.
const up = await client.files.upload({
  file: await toFile(photo, 'shoe.jpg'), fileName: 'shoe.jpg', folder: '/node/shop',
  tags: ['red', 'sale'], useUniqueFileName: false, customCoordinates: '0,0,10,10',
});
assert.equal(up.filePath, '/node/shop/shoe.jpg');
assert.deepEqual(up.tags, ['red', 'sale']);
assert.equal(up.versionInfo.name, 'Version 1');
assert.equal(await served('/node/shop/shoe.jpg'), 200);
assert.equal(await served('/tr:n-ik_ml_thumbnail/node/shop/shoe.jpg'), 200);
// A base64 file, as the JavaScript SDKs may send it.
const b64 = await client.files.upload({ file: other.toString('base64'), fileName: 'b.png',
                                        folder: '/node', useUniqueFileName: false });
assert.equal(b64.filePath, '/node/b.png');
assert.equal(await status(client.files.upload({ file: await toFile(photo, 'x.jpg'),
  fileName: 'shoe.jpg', folder: '/node/shop', useUniqueFileName: false,
  overwriteFile: false })), 409);

// Details, update, publish.
const got = await client.files.get(up.fileId);
assert.equal(got.mime, 'image/jpeg');
const updated = await client.files.update(up.fileId, { tags: ['blue'], description: 'd' });
assert.deepEqual(updated.tags, ['blue']);
await client.files.update(up.fileId, { publish: { isPublished: false } });
assert.equal(await served('/node/shop/shoe.jpg'), 404);
await client.files.update(up.fileId, { publish: { isPublished: true } });
assert.equal(await status(client.files.get('0'.repeat(24))), 404);

// Tags in bulk.
const added = await client.files.bulk.addTags({ fileIds: [up.fileId, b64.fileId], tags: ['x'] });
assert.equal(added.successfullyUpdatedFileIds.length, 2);
await client.files.bulk.removeTags({ fileIds: [up.fileId], tags: ['x'] });
await client.files.bulk.removeAITags({ fileIds: [up.fileId], AITags: ['none'] });
assert.deepEqual((await client.files.get(up.fileId)).tags, ['blue']);

// Versions: an overwrite makes one; restore and delete.
await client.files.upload({ file: await toFile(other, 'shoe.jpg'), fileName: 'shoe.jpg',
                            folder: '/node/shop', useUniqueFileName: false });
const versions = await client.files.versions.list(up.fileId);
assert.deepEqual(versions.map((v) => v.versionInfo.name), ['Version 1', 'Version 2']);
const first = await client.files.versions.get(up.fileId, { fileId: up.fileId });
assert.equal(first.type, 'file-version');
const restored = await client.files.versions.restore(up.fileId, { fileId: up.fileId });
assert.equal(restored.versionInfo.name, 'Version 1');
await client.files.versions.delete(versions[1].versionInfo.id, { fileId: up.fileId });
assert.equal((await client.files.versions.list(up.fileId)).length, 1);

// Metadata.
const meta = await client.files.metadata.get(up.fileId);
assert.equal(meta.format, 'jpg');
assert.equal((await client.files.metadata.getFromURL({ url: `${base}/node/shop/shoe.jpg` })).pHash,
             meta.pHash);

// Copy, move, rename.
await client.files.copy({ sourceFilePath: '/node/shop/shoe.jpg', destinationPath: '/node/copy' });
await client.files.move({ sourceFilePath: '/node/b.png', destinationPath: '/node/moved' });
assert.equal(await served('/node/b.png'), 404);
assert.equal(await served('/node/moved/b.png'), 200);
await client.files.rename({ filePath: '/node/moved/b.png', newFileName: 'c.png' });
assert.equal(await served('/node/moved/c.png'), 200);
assert.equal(await status(client.files.rename({ filePath: '/node/moved/c.png',
                                                newFileName: 'c.png' })), 200);

// Listing and search (Version 1, restored, brought back its tags; the copy has them too).
const listed = await client.assets.list({ path: '/node/shop', type: 'file' });
assert.deepEqual(listed.map((f) => f.name), ['shoe.jpg']);
const found = await client.assets.list({ searchQuery: 'tags IN ["sale"] OR name = "c.png"' });
assert.deepEqual(found.map((f) => f.filePath).sort(), ['/node/copy/shoe.jpg', '/node/moved/c.png', '/node/shop/shoe.jpg']);
assert.equal(await status(client.assets.list({ searchQuery: 'name ==' })), 400);

// Custom metadata fields.
const field = await client.customMetadataFields.create({
  name: 'size', label: 'Size', schema: { type: 'Number', minValue: 1, maxValue: 50 } });
await client.files.update(up.fileId, { customMetadata: { size: 42 } });
assert.equal(await status(client.files.update(up.fileId, { customMetadata: { size: 99 } })),
             400);
assert.equal((await client.customMetadataFields.list()).length, 1);
await client.customMetadataFields.update(field.id, { label: 'Shoe size' });
await client.customMetadataFields.delete(field.id);

// Named transformations.
const named = await client.namedTransformations.create({ name: 'small', transformation: 'w-20' });
assert.equal(await served('/tr:n-small/node/shop/shoe.jpg'), 200);
await client.namedTransformations.delete(named.id);
assert.equal(await served('/tr:n-small/node/shop/shoe.jpg'), 400);

// Folders and bulk jobs.
await client.folders.create({ folderName: 'albums', parentFolderPath: '/node' });
const job = await client.folders.copy({ sourceFolderPath: '/node/shop',
                                        destinationPath: '/node/albums' });
assert.equal((await client.folders.job.get(job.jobId)).status, 'Completed');
assert.equal(await served('/node/albums/shop/shoe.jpg'), 200);
await client.folders.move({ sourceFolderPath: '/node/albums', destinationPath: '/node/old' });
await client.folders.rename({ folderPath: '/node/old/albums', newFolderName: 'gone' });
await client.folders.delete({ folderPath: '/node/old' });
assert.equal(await served('/node/old/gone/shop/shoe.jpg'), 404);

// Purge, then delete (one, then in bulk, all or nothing).
const purge = await client.cache.invalidation.create({ url: `${base}/node/shop/shoe.jpg` });
assert.equal((await client.cache.invalidation.get(purge.requestId)).status, 'Completed');
assert.equal(await status(client.files.bulk.delete({ fileIds: [up.fileId, '0'.repeat(24)] })),
             404);
await client.files.delete(b64.fileId);
const gone = await client.files.bulk.delete({ fileIds: [up.fileId] });
assert.deepEqual(gone.successfullyDeletedFileIds, [up.fileId]);
assert.equal(await served('/node/shop/shoe.jpg'), 404);

// A wrong key is refused.
const wrong = new ImageKit({ privateKey: 'wrong', baseURL: base, maxRetries: 0 });
assert.equal(await status(wrong.files.get(up.fileId)), 401);
console.log('ok');
