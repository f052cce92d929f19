// Hook files mirroring PocketBase's documented examples (jsvm docs: routing, record hooks,
// $app, cron); loaded by api/tests/hooks_js.rs.

routerAdd("GET", "/hello/{name}", (e) => {
  let name = e.request.pathValue("name")
  return e.json(200, { "message": "Hello " + name, "q": e.request.url.query().get("x") })
})

// A custom route with auth (the docs' `$apis.requireAuth()` example).
routerAdd("GET", "/api/myapp/me", (e) => {
  return e.json(200, { "id": e.auth.id, "collection": e.auth.collection().name, "info": e.requestInfo().query })
}, $apis.requireAuth())

routerAdd("GET", "/api/myapp/admin", (e) => e.json(200, { ok: true }), $apis.requireSuperuserAuth())

routerAdd("POST", "/api/myapp/bind", (e) => {
  let data = new DynamicModel({ a: "", b: 0 })
  e.bindBody(data)
  return e.json(200, data)
})

routerAdd("GET", "/str", (e) => e.string(201, "hi"))
routerAdd("GET", "/html", (e) => e.html(200, "<b>x</b>"))
routerAdd("GET", "/nc", (e) => e.noContent(204))
routerAdd("GET", "/redir", (e) => e.redirect(307, "/x"))
routerAdd("GET", "/none", (e) => { })

routerAdd("GET", "/throw/api", (e) => { throw new BadRequestError("nope", { a: 1 }) })
routerAdd("GET", "/throw/notfound", (e) => { throw new NotFoundError() })
routerAdd("GET", "/throw/plain", (e) => { throw new Error("plain") })
routerAdd("GET", "/limits/loop", (e) => { while (true) { } })
routerAdd("GET", "/limits/alloc", (e) => { let a = []; while (true) { a.push("x".repeat(1024) + a.length) } })
routerAdd("GET", "/limits/recurse", (e) => { const f = (n) => f(n + 1) + 1; return e.json(200, f(0)) })

// $app reads and writes from a route: one commit for both saves.
routerAdd("POST", "/api/myapp/notes", (e) => {
  let body = e.requestInfo().body
  let collection = $app.findCollectionByNameOrId("notes")
  let first = new Record(collection, { title: body.title })
  let second = new Record(collection)
  second.set("title", body.title + " (copy)")
  $app.runInTransaction((txApp) => { txApp.save(first); txApp.save(second) })
  return e.json(200, { ids: [first.id, second.id] })
})
routerAdd("GET", "/api/myapp/notes", (e) => {
  let records = $app.findRecordsByFilter("notes", "title ~ {:q}", "-title", 10, 0, { q: e.request.url.query().get("q") })
  let one = records.length ? $app.findRecordById("notes", records[0].id) : null
  return e.json(200, { titles: records.map((r) => r.getString("title")), first: one ? one.get("title") : null })
})
routerAdd("GET", "/api/myapp/security", (e) => {
  let token = $security.createJWT({ "sub": "x" }, "secret", 60)
  return e.json(200, {
    random: $security.randomString(12).length,
    claims: $security.parseJWT(token, "secret"),
    env: $os.getenv("POCKETLOG_HOOKS_TEST_ENV"),
    str: toString([104, 105]),
  })
})

// A create hook that sets a field, and writes an audit record in the same commit.
onRecordCreateRequest((e) => {
  if (e.record.getString("title") == "boom") {
    throw new BadRequestError("no booms")
  }
  if (e.record.getString("title") == "silent") {
    return // e.next() not called: nothing is written
  }
  e.record.set("title", "hooked:" + e.record.getString("title"))
  let audit = new Record($app.findCollectionByNameOrId("audit"), { action: "create " + e.record.getString("title") })
  $app.save(audit)
  e.next()
}, "posts")

onRecordUpdateRequest((e) => {
  if (e.record.getString("title") == "custom") {
    return e.json(202, { custom: true })
  }
  e.next()
}, "posts")

onRecordAfterCreateSuccess((e) => {
  $app.save(new Record($app.findCollectionByNameOrId("audit"), { action: "after " + e.record.getString("title") }))
  e.next()
}, "posts")

onRecordViewRequest((e) => {
  e.record.set("title", e.record.getString("title").toUpperCase())
  e.next()
}, "posts")

cronAdd("notes_cleanup", "*/5 * * * *", () => {
  let collection = $app.findCollectionByNameOrId("audit")
  $app.save(new Record(collection, { action: "cron" }))
})
