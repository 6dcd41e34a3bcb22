console.log("hello from hello-node");
