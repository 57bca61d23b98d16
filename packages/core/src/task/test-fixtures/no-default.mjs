// A task module that forgot `export default`.
export const task = { model: () => undefined, data: () => ({}), loss: 'meanSquaredError' };
