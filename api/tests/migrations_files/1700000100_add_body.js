// Adds a field to an existing collection.
migrate((app) => {
  let collection = app.findCollectionByNameOrId("articles")
  collection.fields.add(new EditorField({ name: "body" }))
  app.save(collection)
}, (app) => {
  let collection = app.findCollectionByNameOrId("articles")
  collection.fields.removeByName("body")
  app.save(collection)
})
