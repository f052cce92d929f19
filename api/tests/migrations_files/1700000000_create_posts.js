// Creates a collection with rules (PocketBase's documented migration example).
migrate((app) => {
  let collection = new Collection({
    type: "base",
    name: "articles",
    listRule: "",
    viewRule: "",
    createRule: "@request.auth.id != ''",
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: "title", type: "text", required: true, max: 100 },
    ],
  })
  app.save(collection)
}, (app) => {
  let collection = app.findCollectionByNameOrId("articles")
  app.delete(collection)
})
