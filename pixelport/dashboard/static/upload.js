// The dashboard's multi-file upload: each file through ImageKit's client-side upload
// (POST /api/v1/files/upload with a single-use signature from /dashboard/library/signature),
// with its own progress bar; the page reloads when every file is in.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from(form.elements.files.files);
    const list = document.getElementById("progress");
    list.replaceChildren();
    const results = await Promise.all(files.map(async (file) => {
      const item = document.createElement("li");
      const bar = document.createElement("progress");
      bar.max = 100; bar.value = 0;
      bar.setAttribute("aria-label", "Uploading " + file.name);
      item.append(file.name + " ", bar);
      list.append(item);
      const auth = await (await fetch("/dashboard/library/signature")).json();
      const body = new FormData();
      body.append("file", file);
      body.append("fileName", file.name);
      body.append("folder", form.elements.folder.value);
      body.append("useUniqueFileName", "false");
      for (const key of ["publicKey", "signature", "expire", "token"]) body.append(key, auth[key]);
      return new Promise((done) => {
        const request = new XMLHttpRequest();
        request.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
        request.onload = () => {
          bar.value = 100;
          item.append(request.status === 200 ? " done" : " failed: " + request.responseText);
          done(request.status === 200);
        };
        request.onerror = () => { item.append(" failed"); done(false); };
        request.open("POST", "/api/v1/files/upload");
        request.send(body);
      });
    }));
    if (results.every(Boolean)) location.reload();
  });
});
