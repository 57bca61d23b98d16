// A default export shaped like a task, but not made by defineTask.
export default { model: () => undefined, data: () => ({}), loss: 'meanSquaredError' };
