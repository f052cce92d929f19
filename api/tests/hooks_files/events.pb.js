// Hook files for api/tests/hooks_events.rs: onRecordAuthRequest, onMailerSend, hook crons,
// hook errors in the request logs, and the model hooks of $app.save/$app.delete.

onRecordAuthRequest((e) => {
  const email = e.record.email()
  if (email === "deny@x.io") {
    throw new BadRequestError("denied by hook")
  }
  if (email === "token@x.io") {
    e.token = "custom-token"
  }
  if (email === "own@x.io") {
    return e.json(200, { own: true, method: e.authMethod })
  }
  e.record.set("name", "seen by " + (e.authMethod || "refresh"))
  e.meta = Object.assign({}, e.meta || {}, { method: e.authMethod, hadToken: e.token.length > 20 })
  return e.next()
}, "users")

onMailerSend((e) => {
  if (e.message.subject.indexOf("Reset") >= 0) {
    throw new Error("no reset mails")
  }
  if (e.message.subject === "drop me") {
    return // no e.next(): the mail is not sent
  }
  e.message.subject = "HOOKED " + e.message.subject
  e.message.from = { address: "hooks@mail.test", name: "Hooks" }
  e.message.cc = [{ address: "copy@mail.test" }]
  return e.next()
})

routerAdd("POST", "/api/events/mail", (e) => {
  const body = e.requestInfo().body
  const message = new MailerMessage({
    from: { address: "app@mail.test" },
    to: [{ address: body.to }],
    subject: body.subject,
    html: "<p>" + body.subject + "</p>",
  })
  $app.newMailClient().send(message)
  return e.json(200, { queued: true })
})

cronAdd("hookJob", "*/5 * * * *", () => {
  const record = new Record($app.findCollectionByNameOrId("audit"))
  record.set("action", "cron ran")
  $app.save(record)
})
cronAdd("removedJob", "0 0 * * *", () => {})
cronRemove("removedJob")

routerAdd("GET", "/boom", (e) => {
  throw new Error("boom at route")
})
routerAdd("GET", "/api/events/denied", (e) => {
  throw new ForbiddenError("not for you")
})

// Model hooks fire for $app.save/$app.delete inside hooks too.
onRecordCreate((e) => {
  e.record.set("action", e.record.get("action") + " (model hook)")
  return e.next()
}, "audit")
onRecordDelete((e) => {
  if (e.record.get("action").indexOf("keep") >= 0) {
    return // no e.next(): not deleted
  }
  return e.next()
}, "audit")
routerAdd("POST", "/api/events/audit", (e) => {
  const record = new Record($app.findCollectionByNameOrId("audit"))
  record.set("action", e.requestInfo().body.action)
  $app.save(record)
  return e.json(200, { id: record.id, action: record.get("action") })
})
routerAdd("DELETE", "/api/events/audit/{id}", (e) => {
  const record = $app.findRecordById("audit", e.request.pathValue("id"))
  $app.delete(record)
  return e.noContent(204)
})
routerAdd("POST", "/api/events/fetch", (e) => {
  const res = $http.send({ url: e.requestInfo().body.url, method: "GET", timeout: 5 })
  return e.json(200, { status: res.statusCode, body: res.body })
})
